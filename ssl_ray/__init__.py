"""ssl_ray: reverse-engineering self-supervised learning with Ray Train, Ray Tune and MLflow."""

import os as _os

# MLflow's telemetry (on by default) fetches its settings in a thread started by `import mlflow`; where that fails
# (no route out, as on a cluster), the thread removes an environment variable while the main thread's first
# request reads the environment (requests looks up proxies there): that request fails with KeyError
# '_MLFLOW_TELEMETRY_SESSION_ID' (benchmarks/tracking_load.py lost a batch of metrics to it). Off unless the
# user turns it on (MLFLOW_DISABLE_TELEMETRY=false); set here, before any of our modules imports mlflow.
_os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

__version__ = "0.1.0"
