"""The demo end to end as a real process (tiny preset, small corpus)."""

import csv
import json
import subprocess
import sys

from s3t.audio import synth
from s3t.audio.constant_q import HOP_LENGTH
from s3t.audio.decode import SAMPLE_RATE
from s3t.config.loading import load_config
from s3t.data.labeled_set import HEADLINE
from s3t.workflows.demo import CONFIGS, demo_report, plan_epochs


def test_demo_runs_to_its_report(tmp_path):
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "s3t", "demo", "--out", "demo", "--minutes", "0.05", "--tracks-per-style", "8",
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
    with open(out / "manifest.csv", newline="") as f:
        test_tracks = sum(row["split"] == "test" for row in csv.DictReader(f))
    counts = json.loads((out / "probe-s3t" / "metrics.json").read_text())["counts"]
    assert counts["test"] == synth.SECTIONS * test_tracks  # every section of a track is one clip


def test_the_demo_runs_a_fixed_schedule_unless_given_minutes():
    cfg = load_config(CONFIGS)
    assert plan_epochs(cfg, 280, None) == 100  # the report does not move with the machine's load
    assert plan_epochs(load_config(["tiny"]), 8, 0.001) == 1  # a budget too small for one epoch still runs one


def test_the_demo_input_is_one_clip_at_its_own_rate():
    clip_frames = round(synth.SECTION_SECONDS * SAMPLE_RATE / HOP_LENGTH)
    assert 0.95 * clip_frames <= load_config(CONFIGS).model.frames <= clip_frames


def _results(random_top1: float, s3t_top1: float = 0.9) -> dict:
    def metrics(top1: float) -> dict:
        level = {name: {"mean": top1, "std": 0.0, "values": [top1] * 3} for name in HEADLINE[False]}
        return {"track": level, "clip": level, "classes": ["a", "b"], "protocol": {"probe": "linear"}}

    by_name = {"s3t": metrics(s3t_top1), "random": metrics(random_top1), "cqt-stats": metrics(0.8)}
    return by_name | {f"{name}-few": m for name, m in by_name.items()}


def test_the_report_says_when_random_weights_leave_the_corpus_nothing_to_show():
    cfg = load_config(["tiny"])
    counts = {"train": 10, "valid": 2, "test": 4}
    saturated = demo_report(_results(0.975), {}, cfg, counts, 3)
    assert "Random Init alone reaches 0.975" in saturated and "benchmarks/RESULTS.md" in saturated
    assert "- over Random Init: -0.075 / -0.075 with all labels; -0.075 ± 0.000 / -0.075 ± 0.000" in saturated
    assert "Random Init alone" not in demo_report(_results(0.6), {}, cfg, counts, 3)
    assert "Random Init alone" not in demo_report(_results(0.975, s3t_top1=1.0), {}, cfg, counts, 3)
