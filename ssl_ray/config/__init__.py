"""Typed, frozen configuration: the schema of an experiment and of a sweep, YAML and dotted-key I/O.

A leaf: it imports nothing of ours but :mod:`ssl_ray.errors`, and no ray, torch or mlflow. Which
names exist and whether the values work together is checked by :mod:`ssl_ray.validation`, once, at
the edge; it returns the normalized config that the tuner, the trial and the worker receive.
"""

from ssl_ray.config.checks import check_choice, check_int, check_names, check_number, check_sweep_name
from ssl_ray.config.io import dump_yaml, flatten, get_path, load_yaml_mapping, parse_value, read_text, set_path
from ssl_ray.config.schema import (
    AMP_MODES,
    BANK_SEED_BASE,
    MLFLOW_METRICS,
    MODES,
    PLACEMENT_STRATEGIES,
    SECTIONS,
    SWITCHES,
    TRIAL_DRIVER_CPUS,
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    ObjectiveConfig,
    OptimConfig,
    ProbeConfig,
    TrainConfig,
)
from ssl_ray.config.sweep import (
    LOSS_METRIC,
    ONLINE_METRICS,
    SAMPLERS,
    SCHEDULERS,
    SEARCH_ALGS,
    SWEEP_FILE,
    SearchDim,
    SweepConfig,
    default_mlflow_uri,
    default_results_dir,
)

__all__ = [
    "check_sweep_name",
    "AMP_MODES",
    "BANK_SEED_BASE",
    "MLFLOW_METRICS",
    "MODES",
    "PLACEMENT_STRATEGIES",
    "LOSS_METRIC",
    "ONLINE_METRICS",
    "SAMPLERS",
    "SCHEDULERS",
    "SEARCH_ALGS",
    "SECTIONS",
    "SWEEP_FILE",
    "SWITCHES",
    "TRIAL_DRIVER_CPUS",
    "DataConfig",
    "ExperimentConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "OptimConfig",
    "ProbeConfig",
    "SearchDim",
    "SweepConfig",
    "TrainConfig",
    "check_choice",
    "check_int",
    "check_names",
    "check_number",
    "default_mlflow_uri",
    "default_results_dir",
    "dump_yaml",
    "flatten",
    "get_path",
    "load_yaml_mapping",
    "read_text",
    "parse_value",
    "set_path",
]
