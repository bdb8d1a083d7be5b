"""`s3t reproduce` at the tiny budget, as a real process: every table row gets its command, its numbers
and its time; a second run resumes instead of redoing."""

import json
import subprocess
import sys

import pytest

from audio_fixtures import write_labeled_music, write_music
from s3t.data.preparation import prepare
from s3t.workflows.paper_grid import BUDGETS, PAPER, grid


def test_grid_has_every_row_of_the_papers_tables():
    for budget in BUDGETS.values():
        rows = grid(budget)
        for table, spec in PAPER.items():
            ours = [r.name for r in rows if r.table == table]
            recipe = [f"{name} ({budget.recipe})" for name in ("Random Init", "cqt-stats", "S3T")]
            recipe = recipe if table == 1 and budget.recipe else []
            recipe += [f"S3T ({preset})" for preset in budget.backbone_recipes] if table == 3 else []
            assert [name for name in ours if name not in recipe] == list(spec["rows"]) and set(recipe) <= set(ours)
    compared = [r for r in grid(BUDGETS["small"]) if r.table in (3, 4) or r.name in ("Random Init", "S3T (Ours)")]
    assert all(len(r.seeds) >= 3 for r in compared)  # spreads over whole pre-training runs
    assert {"S3T (cpu-small)", "S3T (cpu-small-swin)"} <= {r.name for r in compared if r.table == 3}


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduce")
    for label in (0, 1):
        for k in range(8):
            write_labeled_music(root / "labeled" / f"class{label}" / f"t{k}.wav", label, seed=label * 10 + k)
    for i in range(12):
        write_music(root / "corpus" / f"c{i}.wav", seconds=4.0, seed=100 + i)
    prepare(root / "corpus", root / "cache", workers=0, progress=False)
    return root


def reproduce(root, out):
    return subprocess.run([sys.executable, "-m", "s3t", "reproduce", "--corpus", str(root / "cache"), "--dataset",
                           "folder", "--root", str(root / "labeled"), "--budget", "tiny", "--out", str(out),
                           "--workers", "0"], capture_output=True, text=True, timeout=900)


def test_reproduce_tiny_writes_all_tables_and_resumes(setting, tmp_path):
    out = tmp_path / "grid"
    run = reproduce(setting, out)
    assert run.returncode == 0, run.stderr[-3000:]
    steps = json.loads((out / "steps.json").read_text())
    assert all(s["returncode"] == 0 for s in steps.values()), steps
    # 4 S3T pre-training set-ups, the recipe as it ships and one CLMR run, 1 supervised run, and their probes
    assert sum(k.startswith("pretrain/") for k in steps) == 6 and sum(k.startswith("supervised/") for k in steps) == 1
    assert "pretrain/clmr-seed0" in steps
    recipe = steps["pretrain/tiny-seed0"]["command"]  # the preset's own model and epochs: only the seed is set
    assert recipe.endswith("--resume --no-progress --config tiny --set train.seed=0"), recipe
    assert steps["probe/random-tiny-seed0-labels1"]["command"].count("--set train.seed=0 ") == 1
    assert "--encoder cqt-stats --config tiny " in steps["probe/cqt-stats-tiny-labels1"]["command"]  # its probe
    tables = (out / "tables.md").read_text()
    for table, spec in PAPER.items():
        assert f"## Table {table}" in tables
        extra = {1: ["Random Init (tiny)", "cqt-stats (tiny)", "S3T (tiny)"], 3: ["S3T (tiny)"]}.get(table, [])
        section = tables.split(f"## Table {table}")[1].split("## ")[0]
        for name in [*spec["rows"], *extra]:
            line = next(line for line in section.splitlines() if line.startswith(f"| {name} |"))
            # a measured mean (± the probe seeds' spread) and a wall time in every row
            # (linear probe: top-1, top-5; MLP probe: top-1)
            assert line.count(" ± ") == 3 and line.rstrip(" |").endswith("min"), line
    assert all(s["command"] in tables for s in steps.values())

    # an interrupted grid: one probe's result is gone; the rerun redoes exactly that step
    victim = out / "probe" / "s3t-resnet18-time_fold-seed0-labels1" / "metrics.json"
    victim.unlink()
    again = reproduce(setting, out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert victim.exists()
    redone = [line for line in again.stderr.splitlines() if "INFO s3t.workflows.reproduce: step" in line]
    assert len(redone) == 1 and "s3t-resnet18-time_fold-seed0-labels1" in redone[0]


def test_a_failed_step_whose_result_exists_runs_again(tmp_path):
    from s3t.workflows.reproduce import Runner

    runner = Runner("corpus", "folder", "root", "tiny", tmp_path)
    result = tmp_path / "pretrain" / "x" / "last.pt"
    result.parent.mkdir(parents=True)
    result.write_bytes(b"a checkpoint written before the loss went non-finite")
    runner.records["pretrain/x"] = {"command": "s3t pretrain ...", "wall_s": 1.0, "returncode": 1, "error": "nan"}
    assert runner._step("pretrain/x", ["--version"], result)  # run again, and this time it succeeds
    assert runner.records["pretrain/x"]["returncode"] == 0 and runner.records["pretrain/x"]["command"] == "s3t --version"
    assert runner._step("pretrain/x", ["--no-such-flag"], result)  # done now: not run again


def test_a_row_of_several_pre_training_seeds_reports_their_mean_and_spread(tmp_path):
    from s3t.workflows.reproduce import Runner

    runner = Runner("corpus", "folder", "root", "small", tmp_path)
    for seed, top1 in zip((0, 1, 2), (0.40, 0.50, 0.60)):
        key = f"probe/random-swin_mini-seed{seed}-labels1"
        scores = {"mean": top1, "values": [top1 - 0.05, top1 + 0.05]}  # probe seeds: not the row's spread
        (tmp_path / key).mkdir(parents=True)
        mlp = {"mean": top1 + 0.1, "values": [top1 + 0.1]}
        (tmp_path / key / "metrics.json").write_text(json.dumps(
            {"multilabel": False, "track": {"top1_accuracy": scores, "top5_accuracy": scores},
             "mlp": {"track": {"top1_accuracy": mlp}}}))
        runner.records[key] = {"command": f"s3t linear-eval {seed}", "wall_s": 60.0, "returncode": 0}
    runner.write_tables()
    line = next(row for row in (tmp_path / "tables.md").read_text().splitlines() if row.startswith("| Random Init |"))
    assert line.endswith("| 50.0 ± 10.0 | 50.0 ± 10.0 | 60.0 ± 10.0 | 3.0 min |"), line
