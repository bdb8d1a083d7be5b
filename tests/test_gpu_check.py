"""The prepared GPU check rehearses on CPU, so that it cannot rot between GPU leases."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_gpu_check_runs_every_section_on_cpu(tmp_path):
    out = tmp_path / "check.json"
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--cpu", "--out", str(out)],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and "skipped" in report["cuda_tests"]
    assert report["cqt"]["max_error_vs_cpu"] == 0.0  # the same CQT on the same device
    assert all(v > 0 for k, v in report["loader"].items() if k.startswith("items_per_s"))
    step = report["step"]["batch_4"]
    assert step["samples_per_s"] > 0 and step["tflop_per_step"] > 0 and math.isfinite(step["mfu_vs_790_tflops"])
    run, resume = report["end_to_end"]["run"], report["end_to_end"]["resume"]
    assert (run["last_step"], resume["last_step"], resume["resumed"]) == (4, 6, True)
    assert report["embed"]["max_abs_diff"] == 0.0


def test_gpu_profile_times_each_part_of_the_step_on_cpu(tmp_path):
    out = tmp_path / "profile.txt"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_profile.py"), "--cpu", "--config", "tiny",
                             "--batch", "4", "--out", str(out)], capture_output=True, text=True, timeout=180,
                            env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'benchmarks'}"})
    assert result.returncode == 0, result.stderr[-2000:]
    text = out.read_text()
    parts = dict(re.match(r"(.+?)\s+([\d.]+) ms", line).groups() for line in text.splitlines()[1:7])
    assert set(parts) == {"whole step", "augment + pre-process", "query encoder fwd+bwd", "key encoder fwd",
                          "optimizer step", "momentum update"}
    assert all(float(ms) > 0 for ms in parts.values())
    assert float(parts["query encoder fwd+bwd"]) < float(parts["whole step"])  # a part of the whole
    assert "profiled 5 steps" in text and "aten::" in text


def _dev_cache(tmp_path) -> Path:
    """A labeled set of 12 synthetic 4-s tracks in 2-s clips, prepared as linear-eval prepares one."""
    from audio_fixtures import write_music
    from s3t.data.preparation import prepare

    rows = ["path,label,split"]
    for i in range(12):
        path = write_music(tmp_path / "dev" / f"d{i:02d}.wav", seconds=4.0, seed=200 + i)
        rows.append(f"{path},{'ab'[i % 2]},{'test' if i >= 8 else 'train'}")
    (tmp_path / "dev.csv").write_text("\n".join(rows) + "\n")
    prepare(tmp_path / "dev.csv", tmp_path / "dev-cache", workers=0, clip_seconds=2.0, progress=False)
    return tmp_path / "dev-cache"


def test_the_compact_cache_holds_both_sets_to_a_quantisation_step_and_runs_the_learning_check(cache, tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from learning_cache import STEP_DB, build, unpack
    from s3t.data.cache import open_cache

    dev = _dev_cache(tmp_path)
    built = build(cache, dev, tmp_path / "learning.npz", mib=0.5)
    assert built["mib"] <= 0.5 and built["dev"]["entries"] == 24 and built["dev"]["tracks"] == 12
    assert 0 < built["pretrain"]["entries"] <= 16 and built["pretrain"]["tracks"] == built["pretrain"]["entries"]
    pt_root, dev_root, manifest = unpack(tmp_path / "learning.npz", tmp_path / "unpacked")
    for original, copy in ((open_cache(dev), open_cache(dev_root)), (open_cache(cache), open_cache(pt_root))):
        assert copy.meta == original.meta
        for i in range(len(copy)):
            j = original.index_of(copy.track_ids[i])
            assert copy.metadata(i) == original.metadata(j)
            assert abs(copy[i].astype(float) - original[j].astype(float)).max() <= STEP_DB / 2 + 0.07  # + float16 rounding
    assert manifest.read_text().splitlines()[1:] == (tmp_path / "dev.csv").read_text().splitlines()[1:]

    out = tmp_path / "learning.json"
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_learning.sh"), "--cpu", "--cache",
                             str(tmp_path / "learning.npz"), "--arms", "swin_nano", "--out", str(out)],
                            capture_output=True, text=True, timeout=300)  # one arm: the arms differ in config only
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert list(report["arms"]) == ["swin_nano"] and report["device"] == "cpu"
    arm = report["arms"]["swin_nano"]
    assert arm["steps"] == 2 and arm["samples_per_s"] > 0 and arm["pretrain_minutes"] > 0
    assert all(0 <= arm[r][level] <= 1 for r in ("trained", "random") for level in ("clip", "track"))
    assert set(report["cqt_stats"]) == {"clip", "track"}
