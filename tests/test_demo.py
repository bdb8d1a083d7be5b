"""The demo end to end as a real process (tiny preset, small corpus)."""

import subprocess
import sys

from s3t.config import load_config
from s3t.demo import demo_report
from s3t.evaluate import HEADLINE


def test_demo_runs_to_its_report(tmp_path):
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "s3t", "demo", "--out", "demo", "--minutes", "0.05", "--clips-per-style", "8",
           "--config", "tiny", "--set", "probe.epochs=10", "--workers", "0", "--no-progress"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)  # a relative --out
    assert run.returncode == 0, run.stderr
    assert f"report: {out / 'report.md'}" in run.stdout and "skipped" not in run.stderr
    report = (out / "report.md").read_text()
    assert "| S3T (pre-trained) |" in report and "| Random Init |" in report and "| cqt-stats (no encoder) |" in report
    assert "- over Random Init: " in report and "- over cqt-stats (no encoder): " in report
    for name in ("loss.png", "probe-s3t/confusion_matrix.png", "probe-random/embedding_map.png",
                 "run/last.pt", "probe-s3t/metrics.json"):
        assert (out / name).stat().st_size > 0


def _results(random_top1: float) -> dict:
    def metrics(top1: float) -> dict:
        return {"track": {name: {"mean": top1, "std": 0.0, "values": [top1] * 3} for name in HEADLINE[False]},
                "classes": ["a", "b"], "protocol": {"probe": "linear"}}

    by_name = {"s3t": metrics(0.9), "random": metrics(random_top1), "cqt-stats": metrics(0.8)}
    return by_name | {f"{name}-few": m for name, m in by_name.items()}


def test_the_report_says_when_random_weights_leave_the_corpus_nothing_to_show():
    cfg = load_config(["tiny"])
    counts = {"train": 10, "valid": 2, "test": 4}
    saturated = demo_report(_results(0.975), {}, cfg, counts, 3)
    assert "Random Init alone reaches 0.975" in saturated and "benchmarks/RESULTS.md" in saturated
    assert "- over Random Init: -0.075 with all labels" in saturated
    assert "Random Init alone" not in demo_report(_results(0.6), {}, cfg, counts, 3)
