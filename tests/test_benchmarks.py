"""The loader benchmark runs in CI mode and holds its target: FFCV >= 5x a torchvision DataLoader
with the same 2-view SimCLR augmentations, on the same images and cores, at 32 px."""

import json
import subprocess

from conftest import PY, ROOT


def test_loader_benchmark_ffcv_beats_torchvision_5x(tmp_path):
    out = tmp_path / "loader.json"
    proc = subprocess.run([PY, str(ROOT / "benchmarks" / "loader.py"), "--quick", "--sizes", "32", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["views"] == 2 and report["protocol"] == "simclr"
    (r,) = report["results"]
    assert r["size"] == 32
    for loader in ("ffcv", "torchvision", "memory"):
        assert r[loader]["images"] > 0 and r[loader]["images_per_s"] > 0
    assert r["ratio_ffcv_vs_torchvision"] == round(r["ffcv"]["images_per_s"] / r["torchvision"]["images_per_s"], 2)
    assert r["ratio_ffcv_vs_torchvision"] >= 5.0, r
    assert "ffcv/torchvision" in proc.stdout
