"""The target bank's classifier trial: supervised, a checkpoint at every epoch, and, on the local Ray it has to
itself, every CPU (split over its workers, never less than a trial's worker)."""

from ssl_ray.config import ExperimentConfig
from ssl_ray.sweep.bank import bank_config


def base(workers: int = 1, cpus: float = 1.0) -> ExperimentConfig:
    d = ExperimentConfig().to_dict()
    d["train"].update(workers=workers, cpus_per_worker=cpus)
    d["probe"].update(bank_epochs=4)
    return ExperimentConfig.from_dict(d)


def test_the_bank_is_a_supervised_trial_checkpointed_every_epoch():
    b = bank_config(base())
    assert b.train.mode == "supervised" and b.train.epochs == 4 and b.train.checkpoint_epochs == [0, 1, 2, 3, 4]
    assert b.probe.targets == ["class"] and b.train.cpus_per_worker == 1.0  # no CPUs given: a trial's shape


def test_the_bank_takes_the_cpus_it_is_given():
    assert bank_config(base(), cpus=2).train.cpus_per_worker == 2.0  # the 2-core default sweep: 2 threads, not 1
    assert bank_config(base(workers=2), cpus=5).train.cpus_per_worker == 2.0  # whole CPUs per worker
    assert bank_config(base(workers=2, cpus=3.0), cpus=4).train.cpus_per_worker == 3.0  # never below a trial's
