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
