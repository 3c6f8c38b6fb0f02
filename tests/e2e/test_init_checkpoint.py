"""``train.init_checkpoint=<dir>/state.pt`` works end to end: validation normalizes it to the directory once,
at the edge, and that normalized value is what the trial and its worker receive and start from."""

import torch

from conftest import LIGHT_PROBES, run_sweep_script


def test_a_trial_starts_from_the_weights_of_a_state_pt(tmp_path):
    from ssl_ray.checkpoints import load_state, trial_dir
    from ssl_ray.config import ExperimentConfig
    from ssl_ray.models.build import model_from_config
    from ssl_ray.tracking import TAG_INIT_CHECKPOINT, TAG_TRIAL_ID
    from ssl_ray.train.optim import build_optimizer, build_scheduler
    from ssl_ray.train.state import save_state

    cfg = ExperimentConfig.from_dict({"model": {"depth": 2, "width": 8}})
    torch.manual_seed(123)
    model = model_from_config(cfg)
    opt = build_optimizer(model.parameters(), cfg.optim, 1)
    init = tmp_path / "pretrained"
    init.mkdir()
    save_state(str(init), model=model, optimizer=opt, scheduler=build_scheduler(opt, 0, 10), epoch=7, cfg=cfg.to_dict(),
               mlflow_run_id=None)

    run = run_sweep_script("sweep_vicreg.py", "init", tmp_path, "--epochs", "1", "--set", "model.depth=2",
                           "--search", "model.width=[8]", "--search", "objective.lam=[25]", "--search", "objective.mu=[25]",
                           "--search", "objective.nu=[1]", "--set", f"train.init_checkpoint={init / 'state.pt'}",
                           "--no-report", *LIGHT_PROBES)
    (trial,) = run.trials
    assert trial.data.params["train.init_checkpoint"] == str(init)  # the normalized form reached the trial
    assert trial.data.tags[TAG_INIT_CHECKPOINT] == str(init)  # and its worker, which loaded it
    start = load_state(trial_dir(run.sweep_dir, trial.data.tags[TAG_TRIAL_ID]) / "epoch_0000")
    assert start["epoch"] == 0
    saved = model.state_dict()
    assert set(start["model"]) == set(saved)
    for k, v in saved.items():  # epoch 0 of the trial is the pretrained network, not a fresh init
        assert torch.equal(start["model"][k], v), k
