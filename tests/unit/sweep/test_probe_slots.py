"""Trials first, probes in the gaps: probe tasks take only the CPUs (and GPUs) no training trial can use.
(That a fan-out with n slots never has more than n tasks in Ray is tests/e2e/test_probe_fanout.py: it starts Ray.)"""

from types import SimpleNamespace

from ssl_ray.config import ExperimentConfig, TrainConfig
from ssl_ray.config.sweep import EXPERIMENT
from ssl_ray.sweep.callbacks import probe_slots


def trial(status, cpus=0.95, workers=1, gpus=0.0):
    train = TrainConfig(workers=workers, cpus_per_worker=cpus, gpus_per_worker=gpus, use_gpu=gpus > 0)
    return SimpleNamespace(status=status, config={EXPERIMENT: ExperimentConfig(train=train)})


def test_slots_by_hand():
    # 2 CPUs, two trials training at once (0.95 + 0.01 each), two waiting: nothing is left for probes
    four = [trial("RUNNING"), trial("RUNNING"), trial("PENDING"), trial("PENDING")]
    assert probe_slots(four, (), 2, 2.0, 0.0, 1.0, 0.0) == 0
    # the last trial trains alone: one CPU is free, one probe task may run
    last = [trial("TERMINATED"), trial("TERMINATED"), trial("TERMINATED"), trial("RUNNING")]
    assert probe_slots(last, (), 2, 2.0, 0.0, 1.0, 0.0) == 1
    assert probe_slots(last, (), 2, 8.0, 0.0, 1.0, 0.0) == 7
    assert probe_slots(last, (), 2, 8.0, 0.0, 2.0, 0.0) == 3  # probe tasks of 2 CPUs each
    # every trial has ended: no limit
    assert probe_slots([trial("TERMINATED"), trial("ERROR")], (), 2, 2.0, 0.0, 1.0, 0.0) is None
    # a running trial holds its CPUs even when the window would pick pending ones first
    assert probe_slots([trial("PENDING", cpus=4), trial("RUNNING", cpus=1)], (), 1, 6.0, 0.0, 1.0, 0.0) == 4
    # GPU probes: the GPUs a training trial uses are not theirs
    gpu = [trial("RUNNING", cpus=4, gpus=1), trial("PENDING", cpus=4, gpus=1)]
    assert probe_slots(gpu, (), 2, 16.0, 2.0, 1.0, 1.0) == 0
    assert probe_slots(gpu[:1], (), 1, 16.0, 2.0, 1.0, 1.0) == 1
