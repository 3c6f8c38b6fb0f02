"""How a sweep proposes and schedules trials: Ray Tune's search algorithms and trial schedulers, built from
the sweep's ``search_alg``, ``scheduler`` and ``scheduler_metric`` (checked in ``ssl_ray.sweep.checks``).

=========  ===============================================================================================
grid       Tune's variant generator: the cross product of the lists, ``num_samples`` times
random     the same generator, each list sampled as a choice: ``num_samples`` independent trials
optuna     ``OptunaSearch``: TPE (Bergstra et al. 2011) proposes each trial from the results so far
bohb       ``TuneBOHB`` (Falkner et al. 2018): TPE-like proposals per budget, with ``HyperBandForBOHB``
fifo       every trial runs to its end
asha       ``ASHAScheduler`` (Li et al. 2020): stops a trial at a rung (grace period x reduction factor^k
           epochs) when it is not in the top 1/reduction_factor of the trials that reached that rung
pbt        ``PopulationBasedTraining`` (Jaderberg et al. 2017), synchronous: every ``pbt_interval`` epochs,
           once every trial has reached it, a trial in the bottom quarter continues from a top-quarter
           trial's checkpoint, its searched ``optim.lr`` and objective coefficients perturbed
           (ssl_ray/sweep/lineage.py carries the weights across)
=========  ===============================================================================================

Time is the epoch; schedulers and searchers read ``scheduler_metric``, an online reading by default
(``online/knn_val``, ssl_ray/train/online.py), reported at every epoch.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from ray import tune

from ssl_ray.config import SweepConfig
from ssl_ray.sweep.checks import pbt_keys
from ssl_ray.sweep.space import OptunaSpace, config_space, pbt_mutations


def search_algorithm(cfg: SweepConfig, max_concurrent: Optional[int] = None) -> Optional[Any]:
    """The Tune searcher: None for grid search (Tune's own variant generator); random search's generator
    takes ``max_concurrent`` itself (Tune limits the others through ``TuneConfig.max_concurrent_trials``)."""
    metric, mode = cfg.scheduler_metric, cfg.metric_mode()
    if cfg.search_alg == "optuna":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(
            space=OptunaSpace(cfg.dims()),
            metric=metric,
            mode=mode,
            sampler=optuna.samplers.TPESampler(seed=cfg.search_seed),
        )
    if cfg.search_alg == "bohb":
        from ray.tune.search.bohb import TuneBOHB

        return TuneBOHB(space=config_space(cfg.dims(), cfg.search_seed), metric=metric, mode=mode, seed=cfg.search_seed)
    if cfg.search_alg == "random":
        from ray.tune.search import BasicVariantGenerator

        return BasicVariantGenerator(random_state=cfg.search_seed, max_concurrent=max_concurrent or 0)
    return None


def trial_scheduler(cfg: SweepConfig):
    """The Tune trial scheduler, with time measured in epochs."""
    metric, mode, epochs = cfg.scheduler_metric, cfg.metric_mode(), cfg.base.train.epochs
    if cfg.search_alg == "bohb":
        from ray.tune.schedulers.hb_bohb import HyperBandForBOHB

        return HyperBandForBOHB(
            time_attr="epoch", metric=metric, mode=mode, max_t=epochs, reduction_factor=cfg.asha_reduction_factor
        )
    if cfg.scheduler == "asha":
        # max_t past the last epoch: a trial that is not stopped early ends by itself, through its trial
        # function's final report, rather than being stopped at its last epoch
        return tune.schedulers.ASHAScheduler(
            time_attr="epoch",
            metric=metric,
            mode=mode,
            max_t=epochs + 1,
            grace_period=cfg.asha_grace_period,
            reduction_factor=cfg.asha_reduction_factor,
        )
    if cfg.scheduler == "pbt":
        return tune.schedulers.PopulationBasedTraining(
            time_attr="epoch",
            metric=metric,
            mode=mode,
            perturbation_interval=cfg.pbt_interval,
            hyperparam_mutations=pbt_mutations(pbt_keys(cfg)),
            quantile_fraction=0.25,
            synch=True,
        )
    return tune.schedulers.FIFOScheduler()


def describe(cfg: SweepConfig) -> Dict[str, str]:
    """What the sweep's parent run records about its search."""
    sched = "hyperband_for_bohb" if cfg.search_alg == "bohb" else cfg.scheduler
    return {
        "search_alg": cfg.search_alg,
        "scheduler": sched,
        "scheduler_metric": cfg.scheduler_metric,
        "scheduler_mode": cfg.metric_mode(),
        "search_seed": str(cfg.search_seed),
    }
