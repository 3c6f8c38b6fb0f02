"""A real ``mlflow server`` on loopback, a tiny sweep that logs to it over HTTP (conftest's ``tiny_http``),
its REST API queried for what the sweep wrote, and ``ssl-ray report`` run on that sweep: figures, table,
artifacts, bad input.

The sweep (2 trials x 2 epochs) writes its report at its end, as every sweep does; the test then runs
``ssl-ray report`` again into a folder of its own and checks those files. Its epoch-2 probes were made to
fail (the integration tests' fault injection) until ``ssl-ray probe`` fills them: the checks here hold
before and after that backfill. It has 2 configurations x 1 seed; the aggregation of several seeds per
configuration (mean ± std, N) is tested on synthetic sweeps in tests/unit/reports.
"""

import csv
import json
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

from conftest import PY, ROOT

from ssl_ray.reports.report import ARTIFACT_DIR, FIGURES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TAPS = ["block1", "block2", "proj_hidden1", "projector"]


def rest(base: str, endpoint: str, params=None, body=None) -> dict:
    """One call to MLflow's REST API (GET with a query string, or POST with a JSON body)."""
    url = f"{base}/api/2.0/mlflow/{endpoint}"
    if body is None:
        req = urllib.request.Request(url + ("?" + urllib.parse.urlencode(params, doseq=True) if params else ""))
    else:
        req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"{}")


def test_sweep_logs_to_the_server_over_http(tiny_http):
    """Acceptance 1: the parent run, the child runs, their params and probe histories, through REST."""
    tmp, base, _, _ = tiny_http
    assert list((tmp / "sweeps").glob("tiny")), "the sweep ran elsewhere"
    assert not (tmp / "results" / "mlflow.db").exists()  # nothing went to a local store
    exp = rest(base, "experiments/get-by-name", {"experiment_name": "tiny"})["experiment"]
    runs = rest(base, "runs/search", body={"experiment_ids": [exp["experiment_id"]], "max_results": 100})["runs"]
    tags = lambda r: {t["key"]: t["value"] for t in r["data"].get("tags", [])}  # noqa: E731
    parents = [r for r in runs if tags(r).get("ssl_ray.kind") == "sweep"]
    children = [r for r in runs if tags(r).get("ssl_ray.kind") == "trial"]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]["info"]["run_id"]
    assert parents[0]["info"]["status"] == "FAILED"  # its probes of epoch 2 gave up (conftest.tiny_http): the truth
    assert (
        tags(parents[0])["ssl_ray.command"].startswith("python ")
        and "--name tiny" in tags(parents[0])["ssl_ray.command"]
    )
    assert len(tags(parents[0])["ssl_ray.git_commit"].split()[0]) == 40
    assert all(tags(c)["mlflow.parentRunId"] == parent for c in children)
    params = [{p["key"]: p["value"] for p in c["data"]["params"]} for c in children]
    assert sorted(p["objective.lam"] for p in params) == ["10.0", "25.0"] and {p["train.seed"] for p in params} == {"0"}
    assert all(p["model.width"] == "8" and p["data.superclass_map"].endswith("digits_superclasses.txt") for p in params)
    for c in children:
        rid = c["info"]["run_id"]
        status = tags(c)["ssl_ray.probe.status"]
        assert status == "complete" or status.startswith("incomplete: "), status  # complete after the backfill
        loss = rest(base, "metrics/get-history", {"run_id": rid, "metric_key": "train/loss"})["metrics"]
        assert sorted(m["step"] for m in loss) == [1, 2]
        for target in ("sample", "class", "superclass", "permuted_1.0"):
            for layer in TAPS:
                hist = rest(
                    base, "metrics/get-history", {"run_id": rid, "metric_key": f"probe/{target}/ncc_test/{layer}"}
                )["metrics"]
                assert {0, 1} <= {m["step"] for m in hist} <= {0, 1, 2}, (target, layer)  # epoch 2: after the backfill
                assert all(0.0 <= m["value"] <= 1.0 for m in hist)


def png_size(path: Path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"), len(data)


def test_report_writes_figures_table_and_artifacts(tiny_http):
    """Acceptance 2: every figure a valid PNG of real size, logged to the parent run; one table row per trial,
    one Markdown row per configuration with its N."""
    tmp, base, sweep_proc, env = tiny_http
    assert "report: 15 files in " + str(tmp / "tiny") in sweep_proc.stdout  # at the sweep's end, beside its tmp/sweeps/
    out = tmp / "report"
    proc = subprocess.run(
        [PY, "-m", "ssl_ray.cli", "report", str(tmp / "sweeps" / "tiny"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "[report] 12/12 figures" in proc.stderr  # the progress display
    for stem in FIGURES:
        w, h, size = png_size(out / f"{stem}.png")
        assert w >= 600 and h >= 300 and size > 20_000, (stem, w, h, size)
    import matplotlib.image

    img = matplotlib.image.imread(out / "fig7_embeddings.png")  # decodes: a whole, drawn image
    assert img.shape[0] > 300 and img[..., :3].std() > 0.05
    exp = rest(base, "experiments/get-by-name", {"experiment_name": "tiny"})["experiment"]
    (parent,) = rest(
        base, "runs/search", body={"experiment_ids": [exp["experiment_id"]], "filter": "tags.`ssl_ray.kind` = 'sweep'"}
    )["runs"]
    listed = rest(base, "artifacts/list", {"run_id": parent["info"]["run_id"], "path": ARTIFACT_DIR})["files"]
    logged = {Path(f["path"]).name: int(f.get("file_size", 0)) for f in listed}
    for stem in FIGURES:
        assert logged.get(f"{stem}.png", 0) > 20_000, stem
    assert {"trials.csv", "trials.md", "README.md"} <= set(logged)
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    expected = {
        "trial",
        "configuration",
        "seed",
        "status",
        "objective.lam",
        "objective.mu",
        "objective.nu",
        "model.width",
        "final_loss",
        "best_layer",
        "class_linear_val",
        "class_linear_test",
        "class_ncc_test",
        "class_cdnv",
        "superclass_linear_test",
        "permuted_1.0_linear_test",
        "run_id",
    }
    assert expected <= set(rows[0]), set(rows[0])
    assert [r["seed"] for r in rows] == ["0", "0"] and len({r["configuration"] for r in rows}) == 2
    for r in rows:
        assert r["status"] == "finished" and r["best_layer"] in TAPS
        assert (
            0.0 < float(r["class_linear_test"]) <= 1.0 and float(r["class_cdnv"]) > 0.0 and float(r["final_loss"]) > 0
        )
    md = (out / "trials.md").read_text().splitlines()
    assert len(md) == 2 + 2 and md[0].startswith("| configuration | N | status |") and "λ" in md[0]
    assert all("| 1 | finished |" in row and " ± " not in row for row in md[2:])  # one seed: no spread to show
    readme = (out / "README.md").read_text()
    assert "--name tiny" in readme and all(f"({stem}.png)" in readme for stem in FIGURES)
    assert "one seed per configuration" in readme


def test_report_bad_input(tiny_http, tmp_path):
    """Acceptance 4: a missing experiment or one without probe metrics is one line and exit 2."""
    tmp, base, _, env = tiny_http
    # an experiment whose sweep has a trial that trained but has no probe metrics yet
    exp_id = rest(base, "experiments/create", body={"name": "unprobed"})["experiment_id"]
    parent = rest(
        base, "runs/create", body={"experiment_id": exp_id, "tags": [{"key": "ssl_ray.kind", "value": "sweep"}]}
    )
    pid = parent["run"]["info"]["run_id"]
    child = rest(
        base,
        "runs/create",
        body={
            "experiment_id": exp_id,
            "tags": [{"key": "ssl_ray.kind", "value": "trial"}, {"key": "mlflow.parentRunId", "value": pid}],
        },
    )
    rest(
        base,
        "runs/log-metric",
        body={"run_id": child["run"]["info"]["run_id"], "key": "train/loss", "value": 1.0, "timestamp": 0, "step": 1},
    )
    rest(base, "experiments/create", body={"name": "never_swept"})
    clean = dict(env, SSL_RAY_RESULTS=str(tmp_path / "results"))
    cases = [
        (["no_such_experiment", "--mlflow-uri", base], env, "experiment 'no_such_experiment': not found in " + base),
        (["unprobed", "--mlflow-uri", base], env, "experiment 'unprobed': no probe metrics yet"),
        (["never_swept", "--mlflow-uri", base], env, "experiment 'never_swept': no sweep run"),
        (["vicreg_digits"], clean, "no MLflow store at"),  # the default store, never written
        ([str(tmp_path / "nope") + "/"], env, "no such sweep directory"),
        ([str(tmp_path)], env, "not a sweep directory"),
        ([str(tmp / "sweeps" / "tiny"), "--layer", "block9"], env, "--layer block9: not a probed layer"),
        ([], env, "the following arguments are required: sweep"),
    ]
    procs = [
        subprocess.Popen(
            [PY, "-m", "ssl_ray.cli", "report", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=e,
        )
        for args, e, _ in cases
    ]
    for (args, _, message), p in zip(cases, procs):
        out, err = p.communicate(timeout=120)
        assert p.returncode == 2, (args, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (args, lines)
    assert not (tmp_path / "results").exists()  # a report of nothing creates no store
