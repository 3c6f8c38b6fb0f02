"""The edge, attacked (issue 33): target-bank files, YAML, flags, paths and stores that used to end in a
traceback, be accepted and fail later, let one value win silently, or print far more than one line. Each
ends in one ``error:`` line (at most ``LINE_LIMIT`` characters, quoting at most ~200 of any value), exit code
2, before Ray starts, with nothing written: no results folder, store, sweep folder or output file.

Every case runs in this process (milliseconds each); ``test_edge_imports_no_ray`` runs a sample as real
scripts and shows, with ``-X importtime``, that the path imports neither ray nor mlflow."""

from pathlib import Path

import numpy as np
import pytest
from conftest import PY, ROOT, clean_environ, run_many

RECIPE = str(ROOT / "configs" / "vicreg_digits.yaml")
LINE = 1000 + len("error: ")  # ssl_ray.cli_base.LINE_LIMIT


def bank_files(d: Path) -> None:
    """A good target bank for digits (1437/360 images, 10 classes) and every way of spoiling one."""
    import io
    import pickle
    import zipfile

    rng = np.random.default_rng(0)
    e, k = 7, 10
    good = dict(
        epochs=np.arange(e),
        train=rng.integers(0, k, (e, 1437)),
        test=rng.integers(0, k, (e, 360)),
        accuracy=np.linspace(0.1, 1.0, e),
        num_classes=np.int64(k),
    )

    def save(name, **over):
        np.savez(d / name, **{n: v for n, v in {**good, **over}.items() if v is not None})

    save("good.npz")
    data = (d / "good.npz").read_bytes()
    (d / "truncated.npz").write_bytes(data[: len(data) // 2])
    (d / "empty.npz").write_bytes(b"")
    (d / "text.npz").write_text("epochs,train,test\n")
    np.save(d / "plain.npy", good["train"])
    (d / "plain.npy").rename(d / "npy.npz")
    (d / "pickle.npz").write_bytes(pickle.dumps(good))
    with zipfile.ZipFile(d / "objects.npz", "w") as zf:  # an npz whose 'train' is a pickled object array
        for name, v in {**good, "train": np.array([{"a": 1}] * 3, dtype=object)}.items():
            buf = io.BytesIO()
            np.save(buf, v, allow_pickle=True)
            zf.writestr(f"{name}.npy", buf.getvalue())
    save("no_accuracy.npz", accuracy=None)
    save("few_train.npz", train=rng.integers(0, k, (e, 100)))
    save("few_test.npz", test=rng.integers(0, k, (e, 50)))
    save("flat.npz", train=rng.integers(0, k, 1437))
    save("negative.npz", train=good["train"] - 1)
    save("float.npz", train=good["train"] + 0.5)
    save("beyond.npz", test=good["test"] + 5)
    save("nan.npz", accuracy=np.array([0.1, np.nan, 0.3, 0.4, 0.5, 0.7, 1.0]))
    save("classes12.npz", num_classes=np.int64(12))
    save("classes_list.npz", num_classes=np.array([10, 10]))
    save("short_epochs.npz", epochs=np.arange(5))
    save("backwards.npz", epochs=np.arange(e)[::-1].copy())


def yaml_files(d: Path) -> None:
    (d / "alias.yaml").write_text(
        'name: x\na: &a ["x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\n'
        "c: [*b,*b,*b,*b,*b,*b,*b,*b]\n"
    )
    (d / "anchor.yaml").write_text("name: &n x\n")
    (d / "deep.yaml").write_text("name: x\nbase:\n  train: " + "[" * 3000 + "]" * 3000 + "\n")
    (d / "dup.yaml").write_text("name: x\nname: y\n")
    (d / "dup_flow.yaml").write_text("name: x\nbase:\n  train: {epochs: 3, epochs: 4}\n")
    (d / "dup_section.yaml").write_text("name: x\nbase:\n  train:\n    epochs: 3\n  train:\n    seed: 1\n")
    (d / "int_key.yaml").write_text("name: x\n1: y\n")
    (d / "desc_int.yaml").write_text("name: x\ndescription: 42\n")
    (d / "desc_lines.yaml").write_text('name: x\ndescription: "one\\ntwo"\n')
    (d / "huge_value.yaml").write_text("name: x\nbase:\n  data: {dataset: " + "x" * 100000 + "}\n")
    (d / "searches_epochs.yaml").write_text("name: x\nsearch_space:\n  train.epochs: [1, 2]\n")
    sub = d / "recipes"
    sub.mkdir()
    (sub / "climb_map.yaml").write_text(
        "name: x\nbase:\n  data: {superclass_map: ../../../../../../../../etc/passwd}\n"
    )
    (sub / "climb_bank.yaml").write_text("name: x\nbase:\n  probe: {target_bank: ../good.npz}\n")
    (sub / "etc").symlink_to("/etc")
    (sub / "via_link.yaml").write_text("name: x\nbase:\n  data: {superclass_map: etc/passwd}\n")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("edge")
    bank_files(d)
    yaml_files(d)
    (d / "a_file").write_text("x")
    (d / "a_dir").mkdir()
    for split, name in (("train", "a/1.png"), ("train", "b/2.png"), ("test", "a/3.png")):  # files that are no images
        (d / "images" / split / name).parent.mkdir(parents=True, exist_ok=True)
        (d / "images" / split / name).write_text("not an image")
    (d / "trial" / "epoch_0003").mkdir(parents=True)
    (d / "trial" / "epoch_0003" / "state.pt").write_bytes(b"")  # named, never read: refused before loading
    return d


@pytest.fixture(scope="module")
def warm(files):
    """The good bank passes validation (the checks refuse only what is wrong)."""
    import contextlib
    import io
    import os

    from ssl_ray.sweep.commands import sweep_main

    saved = os.environ.get("SSL_RAY_RESULTS")
    os.environ["SSL_RAY_RESULTS"] = str(files / "warm_results")
    try:
        with contextlib.redirect_stdout(io.StringIO()) as out:
            rc = sweep_main(
                ["--set", f"probe.target_bank={files}/good.npz", "--print-config"], config_file=RECIPE, prog="x"
            )
    finally:
        os.environ.pop("SSL_RAY_RESULTS") if saved is None else os.environ.update(SSL_RAY_RESULTS=saved)
    assert rc == 0 and "good.npz" in out.getvalue()
    assert not (files / "warm_results").exists()
    return files


BANK = "probe.target_bank={d}/"
SWEEP_CASES = [
    # target banks: read as data only, checked against the dataset (digits: 1437/360 images, 10 classes)
    (["--set", BANK + "truncated.npz"], "truncated.npz: cannot be read (truncated or corrupt"),
    (
        ["--set", BANK + "empty.npz"],
        "empty.npz: not a target bank (an .npz archive written by `ssl-ray probe bank`); the file is empty",
    ),
    (
        ["--set", BANK + "text.npz"],
        "text.npz: not a target bank (an .npz archive written by `ssl-ray probe bank`); the file is of another",
    ),
    (
        ["--set", BANK + "npy.npz"],
        "npy.npz: not a target bank (an .npz archive written by `ssl-ray probe bank`); the file is a single .npy",
    ),
    (
        ["--set", BANK + "pickle.npz"],
        "pickle.npz: not a target bank (an .npz archive written by `ssl-ray probe bank`); the file is a Python pickle",
    ),
    (
        ["--set", BANK + "objects.npz"],
        "objects.npz: its 'train' array holds Python objects (pickled data), which ssl_ray never loads",
    ),
    (["--set", BANK + "no_accuracy.npz"], "no_accuracy.npz: not a target bank (no accuracy array in it)"),
    (
        ["--set", BANK + "few_train.npz"],
        "few_train.npz: made for 100/360 train/test images of 10 classes, but the dataset has 1437/360 of 10",
    ),
    (
        ["--set", BANK + "few_test.npz"],
        "few_test.npz: made for 1437/50 train/test images of 10 classes, but the dataset has 1437/360",
    ),
    (
        ["--set", BANK + "classes12.npz"],
        "classes12.npz: made for 1437/360 train/test images of 12 classes, but the dataset has 1437/360 of 10",
    ),
    (["--set", BANK + "flat.npz"], "flat.npz: train labels must have shape (epochs, images) = (7, N), got (1437,)"),
    (
        ["--set", BANK + "short_epochs.npz"],
        "short_epochs.npz: train labels must have shape (epochs, images) = (5, N), got (7, 1437)",
    ),
    (["--set", BANK + "negative.npz"], "negative.npz: train labels must lie in [0, 10) (num_classes 10), got -1..8"),
    (["--set", BANK + "float.npz"], "float.npz: train labels must be integers, got float64"),
    (["--set", BANK + "beyond.npz"], "beyond.npz: test labels must lie in [0, 10) (num_classes 10), got 5..14"),
    (["--set", BANK + "nan.npz"], "nan.npz: accuracy must lie in [0, 1], got [0.1, nan, 0.3"),
    (["--set", BANK + "classes_list.npz"], "classes_list.npz: num_classes must be one integer >= 2, got [10, 10]"),
    (["--set", BANK + "backwards.npz"], "backwards.npz: epochs must be >= 2 increasing non-negative integers"),
    # YAML: plain data only, each key once, shallow; a recipe's relative paths stay in its folder
    (
        ["--config", "{d}/alias.yaml"],
        "alias.yaml' at line 2, column 4: anchors and aliases (&name, *name) are not allowed",
    ),
    (
        ["--config", "{d}/anchor.yaml"],
        "anchor.yaml' at line 1, column 7: anchors and aliases (&name, *name) are not allowed",
    ),
    (["--config", "{d}/deep.yaml"], "deep.yaml' at line 3, column 24: nested deeper than 16 levels"),
    (["--config", "{d}/dup.yaml"], "dup.yaml' at line 2, column 1: key 'name' is given twice in one mapping"),
    (
        ["--config", "{d}/dup_flow.yaml"],
        "dup_flow.yaml' at line 3, column 22: key 'epochs' is given twice in one mapping",
    ),
    (
        ["--config", "{d}/dup_section.yaml"],
        "dup_section.yaml' at line 5, column 3: key 'train' is given twice in one mapping",
    ),
    (["--config", "{d}/int_key.yaml"], "int_key.yaml' at line 2, column 1: a key must be a name, got 1"),
    (["--config", "{d}/desc_int.yaml"], "description must be one line of text (at most 300 characters), got 42"),
    (
        ["--config", "{d}/desc_lines.yaml"],
        "description must be one line of text (at most 300 characters), got 'one\\ntwo'",
    ),
    (
        ["--config", "{d}/recipes/climb_map.yaml"],
        "data.superclass_map '../../../../../../../../etc/passwd' in {d}/recipes/climb_map.yaml: a relative path must "
        "stay inside",
    ),
    (
        ["--config", "{d}/recipes/climb_bank.yaml"],
        "probe.target_bank '../good.npz' in {d}/recipes/climb_bank.yaml: a relative path",
    ),
    (
        ["--config", "{d}/recipes/via_link.yaml"],
        "data.superclass_map 'etc/passwd' in {d}/recipes/via_link.yaml: a relative path",
    ),
    (
        ["--set", "model.projector_dims=&a [8, 8]"],
        "cannot parse value '&a [8, 8]': anchors and aliases (&name, *name) are not",
    ),
    (["--set", "model.projector_dims=" + "[" * 40 + "]" * 40], "nested deeper than 16 levels"),
    (
        ["--search", "optim.lr={loguniform: [0.001, 0.01], loguniform: [0.1, 1]}"],
        "key 'loguniform' is given twice in one mapping",
    ),
    (["--set", "data.dataset=" + "y" * 5000], "unknown dataset 'yyyyyyyyyy"),
    # flags: a key once, never one that is searched; counts bounded; targets distinct after parsing
    (["--set", "train.epochs=3", "--set", "train.epochs=4"], "--set train.epochs is given twice; give it once"),
    (["--set", "train.epochs=3", "--set", " train.epochs=3"], "--set train.epochs is given twice; give it once"),
    (
        ["--search", "model.depth=[1]", "--search", "model.depth=[2]"],
        "--search model.depth is given twice; give it once",
    ),
    (
        ["--epochs", "3", "--set", "train.epochs=4"],
        "train.epochs is given twice (--epochs and --set train.epochs); give it once",
    ),
    (
        ["--set", "optim.batch_size=64", "--batch-size", "32"],
        "optim.batch_size is given twice (--batch-size and --set optim.batch_size)",
    ),
    (
        ["--search", "train.epochs=[1,2]", "--epochs", "3"],
        "train.epochs is searched over [1, 2], so --epochs would be ignored",
    ),
    (
        ["--config", "{d}/searches_epochs.yaml", "--epochs", "3"],
        "train.epochs is searched over [1, 2], so --epochs would be ignored",
    ),
    (["--seeds", "1" + "0" * 21], "--seeds must be <= 10000 (the most trials in one sweep), got 1" + "0" * 21),
    (["--seeds", "20000"], "--seeds must be <= 10000 (the most trials in one sweep), got 20000"),
    (["--set", "probe.targets=[class,class]"], "probe.targets: 'class' is given twice; give each name once"),
    (
        ["--set", "probe.targets=[class,random_0.5,random_0.50]"],
        "probe.targets: 'random_0.50' is the same target as 'random_0.5'",
    ),
    (
        ["--set", "probe.targets=[permuted_1,permuted_1.0]"],
        "probe.targets: 'permuted_1.0' is the same target as 'permuted_1'",
    ),
    (["--set", "probe.metrics=[ncc,ncc]"], "probe.metrics: 'ncc' is given twice; give each name once"),
    (["--set", "probe.layers=[block1,block1]"], "probe.layers: 'block1' is given twice; give each name once"),
    # paths and stores that cannot be made, and relative or in-memory SQLite stores
    (
        ["--storage-path", "/proc/ssl_ray_nope/sweeps"],
        "storage_path '/proc/ssl_ray_nope/sweeps': /proc is not a writable directory",
    ),
    (
        ["--storage-path", "{d}/a_file/sweeps"],
        "storage_path '{d}/a_file/sweeps': {d}/a_file is not a writable directory",
    ),
    (
        {"SSL_RAY_RESULTS": "{d}/a_file/results"},
        "(the results folder, SSL_RAY_RESULTS={d}/a_file/results): {d}/a_file is not a",
    ),
    (
        {"SSL_RAY_RESULTS": "/proc/ssl_ray_nope/results"},
        "SSL_RAY_RESULTS=/proc/ssl_ray_nope/results): /proc is not a writable",
    ),
    (
        ["--mlflow-uri", "sqlite:///rel/mlflow.db"],
        "MLflow URI 'sqlite:///rel/mlflow.db': a relative path, which MLflow reads from",
    ),
    ({"MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}, "MLflow URI 'sqlite:///mlflow.db': a relative path"),
    (["--mlflow-uri", "sqlite:///:memory:"], "MLflow URI 'sqlite:///:memory:': an in-memory store keeps nothing"),
    (
        ["--mlflow-uri", "sqlite:////proc/ssl_ray_nope/mlflow.db"],
        "cannot create the database folder /proc/ssl_ray_nope (/proc is",
    ),
]


def case_id(case) -> str:
    return case[1].replace("{d}/", "")[:50]


@pytest.mark.parametrize("case", range(len(SWEEP_CASES)), ids=[case_id(c) for c in SWEEP_CASES])
def test_bad_sweep_input(case, warm, tmp_path, capsys, monkeypatch):
    from ssl_ray.sweep.commands import sweep_main

    files = warm
    args, message = SWEEP_CASES[case]
    env = {k: v.replace("{d}", str(files)) for k, v in args.items()} if isinstance(args, dict) else {}
    args = [] if isinstance(args, dict) else [a.replace("{d}", str(files)) for a in args]
    monkeypatch.setenv("SSL_RAY_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    before = sorted(files.rglob("*"))
    rc = sweep_main(args, config_file=RECIPE, prog="sweep_vicreg.py")
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), err[:3000]
    assert message.replace("{d}", str(files)) in lines[0], lines[0]
    assert len(lines[0]) <= LINE and out == ""
    assert (
        "allow_pickle" not in err and "pickle.load" not in err and "root:" not in err
    )  # no advice to unpickle, no system file
    assert not (tmp_path / "results").exists() and sorted(files.rglob("*")) == before  # nothing written
    assert not any(Path(v).exists() for v in env.values() if not v.startswith("sqlite"))


def test_a_long_value_is_quoted_by_its_head_and_length(warm, tmp_path, capsys, monkeypatch):
    """A value of 100,000 characters is quoted by its first 200 and its length."""
    from ssl_ray.sweep.commands import sweep_main

    monkeypatch.setenv("SSL_RAY_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert sweep_main(["--config", f"{warm}/huge_value.yaml"], config_file=RECIPE, prog="x") == 2
    line = capsys.readouterr().err.strip()
    assert f"'{'x' * 199}...' (100002 characters) (known: cifar10" in line and len(line) < 600, line[:800]


OTHER_CASES = [  # other commands, through ``ssl-ray``'s own entry point
    (
        [
            "data",
            "write-beton",
            "--dataset",
            "digits",
            "--split",
            "train",
            "--out",
            "{d}/o.beton",
            "--image-size",
            "-3",
        ],
        "image size must be in 4..1024 (as data.image_size), got -3",
    ),
    (
        ["data", "write-beton", "--dataset", "digits", "--split", "train", "--out", "{d}/o.beton", "--image-size", "0"],
        "image size must be in 4..1024 (as data.image_size), got 0",
    ),
    (
        [
            "data",
            "write-beton",
            "--dataset",
            "digits",
            "--split",
            "train",
            "--out",
            "{d}/o.beton",
            "--num-workers",
            "-5",
        ],
        "writer processes must be -1 (all cores) or 1..256, got -5",
    ),
    (
        [
            "data",
            "write-beton",
            "--dataset",
            "digits",
            "--split",
            "train",
            "--out",
            "{d}/o.beton",
            "--max-resolution",
            "9" * 20,
        ],
        "max resolution must be in 1..65535",
    ),
    (
        ["data", "write-beton", "--dataset", "digits", "--split", "train", "--out", "/proc/ssl_ray_nope/o.beton"],
        "--out /proc/ssl_ray_nope/o.beton: cannot write it (/proc is not a writable directory",
    ),
    (
        ["data", "write-beton", "--dataset", "digits", "--split", "train", "--out", "{d}/a_file/o.beton"],
        "--out {d}/a_file/o.beton: cannot write it ({d}/a_file is not a writable directory)",
    ),
    (
        ["data", "write-beton", "--dataset", "digits", "--split", "train", "--out", "{d}/a_dir"],
        "--out {d}/a_dir: is a directory",
    ),
    (
        [
            "data",
            "write-beton",
            "--dataset",
            "imagefolder",
            "--data-root",
            "{d}/images",
            "--split",
            "train",
            "--out",
            "{d}/o.beton",
        ],
        "{d}/images/train/a/1.png: cannot read image (UnidentifiedImageError",
    ),
    (
        ["export", "--checkpoint", "{d}/trial", "--out", "{d}/net"],
        "{d}/trial: not a checkpoint (no state.pt in it); it is a trial directory (epochs 3): give one of its "
        "checkpoints, "
        "e.g. --checkpoint {d}/trial/epoch_0003",
    ),
    (
        ["export", "--checkpoint", "{d}/nope", "--out", "{d}/net"],
        "--checkpoint {d}/nope: not a checkpoint (no such directory)",
    ),
    (
        ["export", "--checkpoint", "{d}/trial/epoch_0003", "--out", "/proc/ssl_ray_nope/net"],
        "--out /proc/ssl_ray_nope/net: cannot write there (/proc is not a writable directory",
    ),
    (
        ["export", "--checkpoint", "{d}/trial/epoch_0003", "--out", "{d}/a_file/net"],
        "cannot write there ({d}/a_file is not a",
    ),
    (
        ["probe", "bank", "--trial-dir", "{d}/trial", "--out", "{d}/a_dir"],
        "--out {d}/a_dir: is a directory; name the file",
    ),
    (
        ["probe", "bank", "--trial-dir", "{d}/trial", "--out", "/proc/ssl_ray_nope/bank.npz"],
        "cannot write it (/proc is not a",
    ),
    (
        ["report", "vicreg_digits", "--out", "{d}/a_file/figs"],
        "--out {d}/a_file/figs: {d}/a_file is not a writable directory",
    ),
    (["z" * 5000], "unknown command 'zzzzzzzzzz"),
    (["bad\ncommand"], "unknown command 'bad\\ncommand'"),
]


@pytest.mark.parametrize("case", range(len(OTHER_CASES)), ids=[case_id(c) for c in OTHER_CASES])
def test_bad_command_input(case, files, tmp_path, capsys, monkeypatch):
    from ssl_ray.cli import main

    argv, message = (
        [a.replace("{d}", str(files)) for a in OTHER_CASES[case][0]],
        OTHER_CASES[case][1].replace("{d}", str(files)),
    )
    monkeypatch.setenv("SSL_RAY_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = sorted(files.rglob("*"))
    rc = main(argv)
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), err[:3000]  # no progress bar first
    assert message in lines[0] and len(lines[0]) <= LINE, lines[0][:2000]
    assert out == "" and not (tmp_path / "results").exists() and sorted(files.rglob("*")) == before


SCRIPT_CASES = [["--set", "probe.target_bank={d}/objects.npz"], ["--config", "{d}/alias.yaml"]]


def test_edge_imports_no_ray(files, tmp_path):
    """A sample of the cases above as the real script, as a user runs it: one line, exit 2, and neither ray
    nor mlflow imported."""
    script = str(ROOT / "experiments" / "sweep_vicreg.py")
    envs = [clean_environ(tmp_path / str(i)) for i in range(len(SCRIPT_CASES))]
    cmds = [[PY, "-X", "importtime", script, *[a.replace("{d}", str(files)) for a in args]] for args in SCRIPT_CASES]
    for proc, env in zip(run_many(cmds, timeout=120, cwd=ROOT, envs=envs), envs):
        lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("import time:")]
        imported = {ln.split("|")[-1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
        assert "ray" not in imported and "mlflow" not in imported
        assert not Path(env["SSL_RAY_RESULTS"]).exists() and proc.stdout == ""
