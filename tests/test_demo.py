"""The demo end to end as a real process (tiny preset, small corpus)."""

import subprocess
import sys


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
