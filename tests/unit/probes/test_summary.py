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
        rows += [(3, layer, "class", "linear_val", val), (3, layer, "class", "linear_test", test),
                 (3, layer, "class", "ncc_test", test - 0.1), (3, layer, "permuted_1.0", "linear_test", 0.11),
                 (3, layer, "random_0.5", "linear_test", 0.3), (3, layer, "random_1.0", "linear_test", 0.2),
                 (1, layer, "class", "linear_val", 1.0 if layer == "projector" else 0.1)]  # an earlier epoch: ignored
    out, layer = trial_summary(table(rows), final_loss=12.5)
    assert layer == "block2"
    assert out == {"final_loss": 12.5, "class_linear_val": 0.80, "class_linear_test": 0.70, "class_ncc_test": 0.60,
                   "permuted_1.0_linear_test": 0.11, "random_1.0_linear_test": 0.2}


def test_without_linear_probes_ncc_decides_and_missing_readings_are_left_out():
    rows = [(2, "b1", "class", "ncc_val", 0.3), (2, "b2", "class", "ncc_val", 0.4), (2, "b2", "class", "ncc_test", 0.35)]
    out, layer = trial_summary(table(rows), final_loss=math.nan)
    assert layer == "b2" and out == {"class_ncc_val": 0.4, "class_ncc_test": 0.35}
    assert trial_summary(table([]), 1.0) == ({"final_loss": 1.0}, None)
