"""Every sweep's MLflow experiment is tagged ``mlflow.experimentKind=custom_model_development``, so that MLflow's
UI opens it on its runs; an experiment made before the tag gets it when a sweep finds it again (a real SQLite
store)."""

from ssl_ray.tracking import EXPERIMENT_KIND, client, ensure_experiment, get_or_create_parent_run


def test_new_and_older_experiments_carry_the_kind(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = client(uri)
    get_or_create_parent_run(uri, "fresh", str(tmp_path / "s1"), {"a": 1}, create=True)
    assert c.get_experiment_by_name("fresh").tags.get(EXPERIMENT_KIND[0]) == "custom_model_development"
    old = c.create_experiment("older")  # as an earlier version made it: no tag
    assert EXPERIMENT_KIND[0] not in c.get_experiment(old).tags
    assert ensure_experiment(c, "older", uri) == old
    assert c.get_experiment(old).tags[EXPERIMENT_KIND[0]] == "custom_model_development"
