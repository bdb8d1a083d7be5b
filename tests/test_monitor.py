"""The pre-training monitor: k-NN and linear-probe readings of a labeled validation split."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from audio_fixtures import write_calm_busy_folder
from s3t.cli import main as cli
from s3t.eval.monitor import knn_top1, probe_top1
from s3t.io.checkpoint import load_checkpoint

TINY = str(Path(__file__).parent.parent / "configs" / "tiny.yaml")


def test_knn_votes_by_weighted_cosine_neighbours():
    bank = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float32)
    labels = np.array([0, 0, 1, 1])
    queries = np.array([[2, 0.1], [0.2, 3], [1, 1.2]], np.float32)
    assert knn_top1(bank, labels, queries, np.array([0, 1, 1]), 2, k=2) == 1.0
    assert knn_top1(bank, labels, queries, np.array([1, 0, 0]), 2, k=2) == 0.0
    # k = 4: every bank item votes, the nearer ones (higher cosine) weigh more
    assert knn_top1(bank, labels, queries[2:], np.array([1]), 2, k=4) == 1.0


def test_probe_monitor_separates_separable_features():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-1, 0.3, (30, 5)), rng.normal(1, 0.3, (30, 5))]).astype(np.float32)
    y = np.repeat([0, 1], 30)
    assert probe_top1(x[::2], y[::2], x[1::2], y[1::2], 2) == 1.0
    assert probe_top1(x[::2], y[::2], x[1::2], 1 - y[1::2], 2) == 0.0


@pytest.fixture(scope="module")
def labeled(tmp_path_factory) -> Path:
    return write_calm_busy_folder(tmp_path_factory.mktemp("monitor_data"))


def test_pretrain_logs_and_plots_the_monitor(labeled, tmp_path):
    cache, run = tmp_path / "cache", tmp_path / "run"
    assert cli(["prepare", str(labeled), "--out", str(cache), "--workers", "0", "--no-progress"]) == 0
    assert cli(["pretrain", "--data", str(cache), "--out", str(run), "--config", TINY, "--no-progress",
                "--monitor", "folder", str(labeled), "--set", "train.batch_size=4", "moco.queue_size=8",
                "optim.epochs=3", "train.monitor_every=2", "train.log_every=100", "train.tensorboard=true"]) == 0
    rows = list(csv.DictReader(open(run / "log.csv")))
    watched = {int(r["epoch"]) + 1: float(r["knn_top1"]) for r in rows if r["knn_top1"]}
    assert sorted(watched) == [2, 3]  # every 2nd epoch, and the last
    assert all(0.0 <= v <= 1.0 for v in watched.values())
    assert all(r["probe_top1"] for r in rows if r["knn_top1"])
    assert (run / "loss.png").stat().st_size > 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["monitor_knn_top1"]["last"] == watched[3] and summary["steps"] == 15
    probed = {int(r["epoch"]) + 1: float(r["probe_top1"]) for r in rows if r["probe_top1"]}
    best_epoch = max(probed, key=lambda e: (probed[e], -e))  # the first epoch reaching the best reading
    best = load_checkpoint(run / "best.pt")
    assert best["progress"]["epoch"] == best_epoch and best["progress"]["best"] == probed[best_epoch]
    # the same numbers in TensorBoard, and the monitor set in its projector
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(run / "tensorboard")).Reload()
    assert {"loss", "acc1", "lr", "samples_per_s", "knn_top1", "probe_top1"} <= set(board.Tags()["scalars"])
    assert [e.step for e in board.Scalars("loss")] == [int(r["step"]) for r in rows]
    assert {e.step: e.value for e in board.Scalars("knn_top1")} == \
        pytest.approx({int(r["step"]): float(r["knn_top1"]) for r in rows if r["knn_top1"]})
    projected = list((run / "tensorboard").glob("*/monitor/tensors.tsv"))
    labels = (projected[0].parent / "metadata.tsv").read_text().split()
    assert len(projected) == 1 and len(projected[0].read_text().splitlines()) == len(labels)
    assert set(labels) == {"calm", "busy"}
    with pytest.raises(SystemExit):  # a monitor needs a dataset and a root
        cli(["pretrain", "--data", str(cache), "--out", str(run), "--monitor", "folder"])
