"""A probe fan-out with n slots never has more than n tasks in Ray, and none while it has no slot (the slots
themselves, computed from the trials, are tests/unit/sweep/test_probe_slots.py). It starts a 2-CPU Ray."""

import pytest


@pytest.fixture(scope="module")
def ray2():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def test_a_fanout_keeps_to_its_slots(ray2, tmp_path):
    import torch

    from ssl_ray.config import ExperimentConfig
    from ssl_ray.models.build import model_from_config
    from ssl_ray.probes.fanout import ProbeFanout
    from ssl_ray.tracking import client, ensure_experiment
    from ssl_ray.train.optim import build_optimizer, build_scheduler
    from ssl_ray.train.state import save_state

    cfg = ExperimentConfig.from_dict(
        {
            "model": {"depth": 2, "width": 8},
            "data": {"image_size": 8},
            "probe": {"metrics": ["ncc"], "targets": ["class"]},
        }
    )
    torch.manual_seed(0)
    model = model_from_config(cfg)
    opt = build_optimizer(model.parameters(), cfg.optim, 1)
    ckpts = []
    for e in (0, 1):
        d = tmp_path / f"epoch_{e:04d}"
        d.mkdir()
        save_state(
            str(d),
            model=model,
            optimizer=opt,
            scheduler=build_scheduler(opt, 0, 10),
            epoch=e,
            cfg=cfg.to_dict(),
            mlflow_run_id=None,
        )
        ckpts.append((e, str(d)))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = client(uri)
    run = c.create_run(ensure_experiment(c, "slots", uri)).info.run_id
    fanout = ProbeFanout(uri, slots=0)
    layers = ["block1", "block2", "projector"]
    fanout.submit("t", run, ckpts, layers)
    fanout.poll(timeout=0.5)
    assert not fanout.in_flight and not fanout.features_pending and len(fanout.queue) == 2  # no slot: nothing sent
    fanout.set_slots(1)
    most = 0
    while fanout.pending:
        most = max(most, len(fanout.in_flight) + len(fanout.features_pending))
        fanout.poll(timeout=0.2)
    assert most == 1
    hist = c.get_metric_history(run, "probe/class/ncc_test/block2")
    assert sorted(h.step for h in hist) == [0, 1] and not fanout.failures
