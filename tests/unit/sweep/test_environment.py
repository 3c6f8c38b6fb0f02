"""The environment ssl_ray sets for Ray: its engine settings everywhere, the local-only ones only on the local Ray a
sweep starts itself, and a value the user exported always wins."""

import os

from ssl_ray.sweep import environment


def test_local_only_settings_stay_off_a_cluster(monkeypatch):
    key = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"
    monkeypatch.setattr(os, "environ", {})
    environment.apply()  # --address: a cluster's spot nodes can be preempted, so its watcher stays on
    assert key not in os.environ and os.environ["RAY_TRAIN_V2_ENABLED"] == "1"
    environment.apply(local=True)
    assert os.environ[key] == "0"
    monkeypatch.setattr(os, "environ", {key: "1", "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "2"})
    environment.apply(local=True)
    assert os.environ[key] == "1" and os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] == "2"
