"""A trial's summary numbers are read at the layer chosen on validation, never on test data."""

import math

import pandas as pd

from ssl_ray.probes.summary import trial_summary


def table(rows):
    return pd.DataFrame(rows, columns=["epoch", "layer", "target", "metric", "value"])


def test_layer_is_chosen_on_validation_and_numbers_read_there():
    rows = []
    # block2 is best on validation at the last epoch; block1 is best on test (it must not be chosen)
    for layer, val, test in (("block1", 0.50, 0.99), ("block2", 0.80, 0.70), ("projector", 0.60, 0.60)):
        rows += [
            (3, layer, "class", "linear_val", val),
            (3, layer, "class", "linear_test", test),
            (3, layer, "class", "ncc_test", test - 0.1),
            (3, layer, "permuted_1.0", "linear_test", 0.11),
            (3, layer, "random_0.5", "linear_test", 0.3),
            (3, layer, "random_1.0", "linear_test", 0.2),
            (1, layer, "class", "linear_val", 1.0 if layer == "projector" else 0.1),
        ]  # an earlier epoch: ignored
    out, layer = trial_summary(table(rows), final_loss=12.5)
    assert layer == "block2"
    assert out == {
        "final_loss": 12.5,
        "class_linear_val": 0.80,
        "class_linear_test": 0.70,
        "class_ncc_test": 0.60,
        "permuted_1.0_linear_test": 0.11,
        "random_1.0_linear_test": 0.2,
    }


def test_without_linear_probes_ncc_decides_and_missing_readings_are_left_out():
    rows = [
        (2, "b1", "class", "ncc_val", 0.3),
        (2, "b2", "class", "ncc_val", 0.4),
        (2, "b2", "class", "ncc_test", 0.35),
    ]
    out, layer = trial_summary(table(rows), final_loss=math.nan)
    assert layer == "b2" and out == {"class_ncc_val": 0.4, "class_ncc_test": 0.35}
    assert trial_summary(table([]), 1.0) == ({"final_loss": 1.0}, None)


def test_a_trials_summary_and_the_sweep_choose_the_same_layer():
    """One rule (``ssl_ray.probes.choice.best_layer``): the trial's ``summary/*`` layer, the report's layer of
    that trial and ``results.load``'s ``best_layer`` are the same, on a tie (the layer nearest the input), with
    a missing reading, and with the input pixels scoring highest (never a candidate)."""
    from ssl_ray.probes.choice import best_layer
    from ssl_ray.reports.selection import select, trial_layers
    from ssl_ray.reports.source import SweepData, Trial

    cases = {
        "tie": [("projector", 0.8), ("block2", 0.8), ("block1", 0.5)],
        "nan": [("block1", math.nan), ("block2", 0.6), ("projector", 0.4)],
        "input": [("input", 0.99), ("projector", 0.3), ("block3", 0.7), ("block10", 0.2)],
    }
    for name, vals in cases.items():
        rows = [(2, layer, "class", "linear_val", v) for layer, v in vals] + [(0, "block1", "class", "linear_val", 1.0)]
        rows += [(2, layer, "class", "linear_test", 0.5) for layer, _ in vals]
        own, layer = trial_summary(table(rows))
        probes = table(rows).assign(trial_id="t", run_id="r")
        trial = Trial("t", "r", "finished", {}, None, "t", "t")
        data = SweepData(
            "sqlite:///x.db",
            "exp",
            "parent",
            {},
            [trial],
            probes,
            pd.DataFrame(columns=["trial_id", "epoch", "metric", "value"]),
        )
        assert layer == trial_layers(data, "linear_val")["t"] == select(data).layer, name
        expected = {"tie": "block2", "nan": "block2", "input": "block3"}[name]
        assert layer == best_layer({la: [v] for la, v in vals}) == expected
