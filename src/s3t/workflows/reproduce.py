"""`s3t reproduce`: the paper's Tables 1–4 on your corpus, dataset and budget, as a resumable grid.

Every step is an `s3t` command run as its own process; the exact command, its wall time and its
result are recorded in OUT/steps.json, a step whose result exists is not run again, and
OUT/tables.md is written from the records after every step (never by hand). Each table keeps the
paper's rows and columns with the paper's numbers, and adds our measured columns on the given
dataset beside them.
"""

from __future__ import annotations

import json
import logging
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from s3t.data.datasets import load_dataset
from s3t.data.labeled_set import HEADLINE
from s3t.io.files import write_json, write_text
from s3t.workflows.paper_grid import BUDGETS, PAPER, TITLES, Row, grid

log = logging.getLogger(__name__)


class Runner:
    """Runs the steps of a grid once each, in order, recording commands, times and results."""

    def __init__(self, corpus: str, dataset: str, root: str, budget: str, out: str | Path, workers: int = 2,
                 clip_seconds: float = 0.0):
        if budget not in BUDGETS:
            raise ValueError(f"unknown budget {budget!r}; expected one of {sorted(BUDGETS)}")
        self.corpus, self.dataset, self.root, self.workers = corpus, dataset, root, workers
        self.clip_seconds = clip_seconds
        self.budget_name, self.budget = budget, BUDGETS[budget]
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.records_path = self.out / "steps.json"
        self.records: dict[str, dict] = json.loads(self.records_path.read_text()) if self.records_path.exists() else {}

    def run(self) -> Path:
        rows = grid(self.budget)
        for seed in range(max(len(r.seeds) for r in rows)):  # every row once before any row twice
            for row in rows:
                if seed < len(row.seeds):
                    self.run_row(row, row.seeds[seed])
                    self.write_tables()
        self.write_tables()
        return self.out / "tables.md"

    # --- steps -----------------------------------------------------------------------------

    def _step(self, key: str, command: list[str], result: Path) -> bool:
        """Run `s3t command` unless `result` exists; record it; whether the step has succeeded."""
        record = self.records.get(key)
        # a step that failed after writing its result (a pre-training stopped by a non-finite loss keeps
        # its last good checkpoint) is not done: it runs again
        if record and record["returncode"] == 0 and result.exists():
            return True
        log.info("step %s: s3t %s", key, shlex.join(command))
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "s3t", *command], capture_output=True, text=True)
        record = {"command": "s3t " + shlex.join(command), "wall_s": round(time.perf_counter() - start, 1),
                  "returncode": done.returncode}
        if done.returncode:
            record["error"] = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
            log.warning("step %s failed: %s", key, record["error"])
        self.records[key] = record
        write_json(self.records_path, self.records, indent=2)
        return not done.returncode

    def _common(self) -> list[str]:
        return ["--no-progress", "--workers", str(self.workers), "--clip-seconds", f"{self.clip_seconds:g}"]

    def _pretrain(self, key: str, row: Row, seed: int) -> bool:
        b = self.budget
        if row.method == "clmr":
            command = ["clmr", "--data", self.corpus, "--out", str(self.out / key), "--resume", "--no-progress",
                       "--set", f"optim.epochs={b.epochs}", f"train.seed={seed}", *b.clmr]
        else:
            command = ["pretrain", "--data", self.corpus, "--out", str(self.out / key), "--resume", "--no-progress",
                       *self._encoder_args(row, seed)]
        return self._step(key, command, self.out / key / "last.pt")

    def _encoder_args(self, row: Row, seed: int) -> list[str]:
        """`--config` and `--set` for a row's encoder, pre-trained or random: a preset as it ships with only
        its seed set, or the budget's config with the row's backbone, pre-processor and epochs."""
        if row.config:
            return ["--config", row.config, "--set", f"train.seed={seed}"]
        b = self.budget
        tile = [f"model.tile={b.tile_copies}"] if row.preprocessor == "freq_tile" else []
        return ["--config", b.config, "--set", f"model.name={row.model}", f"model.preprocessor={row.preprocessor}",
                f"optim.epochs={b.epochs}", f"train.seed={seed}", *b.overrides, *tile]

    def _probe(self, key: str, encoder_args: list[str], label_fraction: float) -> bool:
        command = ["linear-eval", "--dataset", self.dataset, "--root", self.root, "--out", str(self.out / key),
                   *encoder_args, "--label-fraction", str(label_fraction), "--seeds", str(self.budget.probe_seeds),
                   "--cache", str(self.out / "dataset-cache"), *self._common(),
                   "--set", f"probe.epochs={self.budget.probe_epochs}", "probe.also_mlp=true"]
        return self._step(key, command, self.metrics_file(key))

    def _supervised(self, key: str, row: Row, seed: int) -> bool:
        b = self.budget
        command = ["supervised", "--dataset", self.dataset, "--root", self.root, "--out", str(self.out / key),
                   "--config", b.config, "--seed", str(seed), "--label-fraction", f"{row.label_fraction:g}",
                   "--probe-seeds", str(b.probe_seeds), "--cache", str(self.out / "dataset-cache"),
                   "--resume", *self._common(), "--set", f"model.name={row.model}", f"optim.epochs={b.epochs}",
                   f"probe.epochs={b.probe_epochs}", "probe.also_mlp=true", *b.overrides]
        return self._step(key, command, self.metrics_file(key))

    def metrics_file(self, key: str) -> Path:
        """The linear probe's metrics.json that the step `key` ends with."""
        folder = self.out / key
        return folder / "linear-eval" / "metrics.json" if key.startswith("supervised/") else folder / "metrics.json"

    def run_row(self, row: Row, seed: int) -> None:
        """Run whatever steps (row, seed) still needs, in order; a failed step stops the rest."""
        *trained, result = step_keys(row, seed)
        if row.method == "supervised":
            self._supervised(result, row, seed)
        elif row.method == "random":
            self._probe(result, ["--encoder", "random", *self._encoder_args(row, seed)], row.label_fraction)
        elif row.method == "cqt-stats":
            preset = ["--config", row.config] if row.config else []
            self._probe(result, ["--encoder", "cqt-stats", *preset], row.label_fraction)
        elif self._pretrain(trained[0], row, seed):
            self._probe(result, ["--checkpoint", str(self.out / trained[0] / "last.pt")], row.label_fraction)

    # --- tables ----------------------------------------------------------------------------

    def write_tables(self) -> None:
        write_text(self.out / "tables.md", render_tables(self))


def _cell(values: list[float]) -> str:
    if not values:
        return "—"
    mean = 100 * statistics.fmean(values)
    return f"{mean:.1f} ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else f"{mean:.1f}"


def step_keys(row: Row, seed: int) -> list[str]:
    """The steps (row, seed) needs, in order: pre-training where there is any, then the step whose
    metrics.json the row reports. A key names the step in steps.json and its folder under OUT."""
    labels = f"labels{row.label_fraction:g}"
    if row.method == "random":
        return [f"probe/random-{row.config or row.model}-seed{seed}-{labels}"]
    if row.method == "cqt-stats":
        return [f"probe/cqt-stats-{row.config}-{labels}" if row.config else f"probe/cqt-stats-{labels}"]
    if row.method == "supervised":
        return [f"supervised/{row.model}-seed{seed}-{labels}"]
    trained = "clmr" if row.method == "clmr" else row.config or f"{row.model}-{row.preprocessor}"
    probed = "clmr" if row.method == "clmr" else f"s3t-{trained}"
    return [f"pretrain/{trained}-seed{seed}", f"probe/{probed}-seed{seed}-{labels}"]


def _measured(runner: Runner, row: Row) -> tuple[list[str], str]:
    """Our cells for a row (mean ± std over pre-training seeds, or over probe seeds when there
    is one pre-training run) and the wall time of the steps that produced it. Reads only what
    has run: tables never start work."""
    per_seed, spreads, wall = [], [], 0.0
    for seed in row.seeds:
        keys = step_keys(row, seed)
        wall += sum(runner.records[k]["wall_s"] for k in keys if k in runner.records)
        done = runner.records.get(keys[-1], {}).get("returncode") == 0 and runner.metrics_file(keys[-1]).exists()
        if not done:
            continue
        metrics = json.loads(runner.metrics_file(keys[-1]).read_text())
        level = "track"
        names = HEADLINE[metrics["multilabel"]][::-1 if metrics["multilabel"] else 1]  # the paper: PR-AUC first
        mlp = metrics.get("mlp", {}).get(level, {})  # MARBLE's probe on the same features, where it ran
        per_seed.append([metrics[level][n]["mean"] for n in names] + ([mlp[names[0]]["mean"]] if mlp else []))
        spreads.append([metrics[level][n]["values"] for n in names] + ([mlp[names[0]]["values"]] if mlp else []))
    if not per_seed:
        return ["—", "—", "—"], "—"
    if len(per_seed) > 1:
        cells = [_cell([s[i] for s in per_seed if len(s) > i]) for i in range(3)]
    else:
        cells = [_cell(spreads[0][i]) if len(spreads[0]) > i else "—" for i in range(3)]
    return cells, f"{wall / 60:.1f} min"


def render_tables(runner: Runner) -> str:
    b = runner.budget
    lines = [f"# S3T reproduction — budget `{runner.budget_name}`", "",
             f"Pre-training corpus: `{runner.corpus}`; labelled dataset: `{runner.dataset}` at `{runner.root}`.",
             f"Budget: config `{b.config}`, {b.epochs} epochs, {b.pretrain_seeds} pre-training seed(s) for the "
             f"compared rows (Random Init, S3T, Tables 3–4), {b.probe_seeds} probe seed(s), "
             f"{b.probe_epochs} probe epochs; "
             f"backbones {b.backbones}."
             + (f" Rows `({b.recipe})`: the `{b.recipe}` preset as it ships (its own model, epochs and probe), "
                f"{b.pretrain_seeds} seeds; `cqt-stats` probed its way." if b.recipe else "")
             + (f" Table 3 adds {', '.join(f'`{p}`' for p in b.backbone_recipes)} as they ship."
                if b.backbone_recipes else ""),
             "", "Ours: track-level test scores in %, mean ± std (over pre-training seeds where there are "
             "several, else over probe seeds), with the paper's linear probe and, on the same features, "
             "MARBLE's MLP probe (one hidden layer of 512, dropout 0.2). Paper: as reported. "
             "Generated by `s3t reproduce`; "
             "commands and times in `steps.json` and below.", ""]
    rows = grid(b)
    for table, spec in PAPER.items():
        lines += [f"## Table {table}: {TITLES[table]}", ""]
        ours = ["ours: PR-AUC", "ours: ROC-AUC", "ours, MLP probe: PR-AUC"] if _multilabel(runner) else \
            ["ours: Top-1", "ours: Top-5", "ours, MLP probe: Top-1"]
        header = ["Method"] + [f"paper: {c}" for c in spec["columns"]] + ours + ["wall time"]
        lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        for row in (r for r in rows if r.table == table):
            reported = spec["rows"].get(row.name, [None] * len(spec["columns"]))  # our extra rows: none
            paper = ["–" if v is None else f"{v:.1f}" for v in reported]
            cells, wall = _measured(runner, row)
            lines.append("| " + " | ".join([row.name, *paper, *cells, wall]) + " |")
        lines.append("")
    lines += ["## Commands", ""]
    for key, record in runner.records.items():
        status = "" if record["returncode"] == 0 else f" — failed: {record.get('error', '')}"
        lines.append(f"- `{record['command']}` ({record['wall_s'] / 60:.1f} min){status}")
    return "\n".join(lines) + "\n"


def _multilabel(runner: Runner) -> bool:
    for path in (runner.out / "probe").glob("*/metrics.json"):
        return bool(json.loads(path.read_text())["multilabel"])
    return load_dataset(runner.dataset, runner.root).multilabel
