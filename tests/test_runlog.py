"""A run's log.csv: complete rows only, trimmed on resume, summarised and plotted with its readings."""

import csv

import pytest

from s3t.config.schema import Config
from s3t.training.runlog import core_fields, plot_run, read_log, run_summary, trim_log

FIELDS = core_fields(("acc1",)) + ["knn_top1"]


def write_log(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(FIELDS)
        writer.writerows(rows)


def test_core_fields_put_the_stats_after_the_loss():
    assert FIELDS == ["step", "epoch", "loss", "acc1", "lr", "samples_per_s", "elapsed_s", "knn_top1"]


def test_rows_cut_short_are_dropped_and_trim_keeps_the_checkpointed_steps(tmp_path):
    path = tmp_path / "log.csv"
    write_log(path, [[1, 0, 2.5, 0.1, 1e-3, 30, 1.0, ""], [2, 0, 2.4, 0.2, 1e-3, 30, 2.0, 0.4],
                     [3, 1, 2.3, 0.3, 1e-3, 30, 3.0, ""], [4, 1, 2.2]])  # the last row cut by a kill
    assert [int(r["step"]) for r in read_log(path)] == [1, 2, 3]
    trim_log(path, 2, FIELDS)
    assert [int(r["step"]) for r in read_log(path)] == [1, 2]
    assert next(csv.reader(open(path))) == FIELDS


def test_summary_gives_last_values_and_the_best_reading(tmp_path):
    path = tmp_path / "log.csv"
    write_log(path, [[1, 0, 2.5, 0.1, 1e-3, 30, 1.0, 0.5], [2, 1, 2.4, 0.2, 1e-3, 30, 2.0, 0.7],
                     [3, 2, 2.3, 0.3, 1e-3, 30, 3.0, 0.6]])
    summary = run_summary(path, Config(), "moco")
    assert summary["steps"] == 3 and summary["last_loss"] == 2.3 and summary["last_acc1"] == pytest.approx(0.3)
    assert summary["monitor_knn_top1"] == {"last": 0.6, "best": 0.7, "best_step": 2}
    plot_run(path, tmp_path / "loss.png")
    assert (tmp_path / "loss.png").stat().st_size > 1000
