"""The one training loop: every method (`s3t.methods`) trains through `fit`.

`fit` owns what every training shares: device and DDP (torchrun), AMP, the learning-rate
schedule, the NaN policy, `log.csv` with its progress bar and plot, checkpoints in the one
schema of `s3t.io.checkpoint`, exact resume, and readings taken at the end of epochs (a monitor,
a validation score) with the best checkpoint kept by one of them.

Reproducibility by construction: the data order is a permutation drawn from (seed, epoch),
each item's crops from (seed, epoch, item), and augmentation and drop-path from (seed, step).
A run resumed from a checkpoint therefore replays exactly what an uninterrupted run does,
whatever the number of DataLoader workers.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from s3t.config.loading import load_config, save_config
from s3t.config.schema import Config
from s3t.io.checkpoint import (
    checkpoint_bytes,
    load_checkpoint,
    restore_method,
    save_checkpoint,
    training_state,
)
from s3t.io.files import append_csv_row, write_json
from s3t.methods.base import Method
from s3t.training.distributed import World, setup_distributed, weight_checksums
from s3t.training.loader import EpochSampler, to_device, training_loader
from s3t.training.runlog import (
    board_row,
    core_fields,
    open_tensorboard,
    plot_run,
    run_summary,
    trim_log,
)
from s3t.training.schedule import warmup_cosine
from s3t.training.step import build_optimizer, speed_up, train_step

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss under nan_policy=stop, too little data …)."""


@dataclass
class EpochCheck:
    """Readings of the method taken at the end of every `every`-th epoch and of the last one
    (a k-NN monitor, a validation score), logged in their own columns of log.csv; with `select`,
    the checkpoint with the highest such reading is kept as best.pt."""

    measure: Callable[[Method], dict[str, float]]
    fields: tuple[str, ...]
    every: int = 1
    select: str | None = None

    def due(self, epoch: int, epochs: int) -> bool:
        return epoch % self.every == 0 or epoch == epochs


@dataclass
class Progress:
    step: int = 0
    epoch: int = 0
    best: float = -math.inf  # the best `EpochCheck.select` reading so far
    elapsed: float = 0.0  # seconds of training before this process took the run over
    window: list = field(default_factory=list)  # (loss, stats) of the steps since the last log row
    readings: dict = field(default_factory=dict)  # the check's readings at the end of this epoch


def run_config(out: str | Path, files: Sequence[str | Path] = (), overrides: Sequence[str] = (),
               resume: bool = False) -> Config:
    """The config of a run in `out`: with `resume` and a checkpoint there, the run's own config
    (from its last.pt) with `files` and `overrides` on top; otherwise the defaults with them."""
    last = Path(out) / "last.pt"
    base = load_checkpoint(last)["config"] if resume and last.exists() else None
    return load_config(files, overrides, base=base)


@dataclass
class Run:
    """Everything one `fit` call works with."""

    method: Method
    net: torch.nn.Module
    opt: torch.optim.Optimizer
    cfg: Config
    world: World
    out: Path
    sampler: EpochSampler
    check: EpochCheck | None
    cache_meta: dict
    meta: dict
    progress: Progress = field(default_factory=Progress)
    clock: tuple[float, int] = (0.0, 0)  # when, and at which step, this process started training
    board: object | None = None  # the TensorBoard writer (train.tensorboard, main rank)

    @property
    def elapsed(self) -> float:
        """Seconds of training so far, over every process that worked on the run."""
        return self.progress.elapsed + time.perf_counter() - self.clock[0]

    @property
    def epoch_complete(self) -> bool:
        """The current epoch's last step has been taken (its readings and checkpoint are due)."""
        return self.progress.step == (self.progress.epoch + 1) * self.sampler.batches_per_epoch

    @property
    def fields(self) -> list[str]:
        return core_fields(self.method.stat_names) + list(self.check.fields if self.check else ())

    def save(self, name: str) -> None:
        if self.world.main:
            p = self.progress
            save_checkpoint(self.out / name, training_state(
                self.method, self.opt, self.cfg,
                {"step": p.step, "epoch": p.epoch, "best": p.best, "elapsed": self.elapsed},
                self.cache_meta, self.meta))


def fit(method: Method, dataset: torch.utils.data.Dataset, cfg: Config, out: str | Path, *, resume: bool = False,
        progress: bool = True, check: EpochCheck | None = None, cache_meta: dict | None = None,
        meta: dict | None = None) -> Path:
    """Train `method` on `dataset` (items keyed by (epoch, index)) for `cfg.optim.epochs`, writing
    config.yaml, log.csv, loss.png, summary.json and checkpoints (last.pt, epochNNNN.pt, best.pt
    with a `check.select`) to `out`; with `resume`, continue from out/last.pt. Returns last.pt."""
    world = setup_distributed(cfg.train.device)
    out = Path(out)
    method.to(world.device)
    speed_up(method, cfg, world.device)
    sampler = EpochSampler(len(dataset), cfg.train.batch_size, world.rank, world.size, cfg.train.seed)
    if sampler.batches_per_epoch == 0:
        raise TrainingError(f"{len(dataset)} items, fewer than one global batch of {cfg.train.batch_size * world.size}; "
                            "lower train.batch_size")
    method.check_batch(cfg.train.batch_size * world.size, len(dataset))
    net = torch.nn.parallel.DistributedDataParallel(method, broadcast_buffers=False) if world.size > 1 else method
    run = Run(method, net, build_optimizer(method, cfg), cfg, world, out, sampler, check, cache_meta or {}, meta or {})
    # a worker that torchrun restarts after a failure (--max-restarts) goes on from last.pt by itself
    _start(run, resume or int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0)
    if world.main:
        _check_disk(run)
        run.board = open_tensorboard(out / "tensorboard") if cfg.train.tensorboard else None
    loader = training_loader(dataset, sampler, cfg, world.device, getattr(method.encoder, "input_kind", "spectrogram"))
    gen = torch.Generator(device=world.device)
    run.clock = (time.perf_counter(), run.progress.step)
    while run.progress.epoch < cfg.optim.epochs and not _done(run.progress.step, cfg):
        train_one_epoch(run, loader, gen, progress)
        if run.epoch_complete:
            _end_epoch(run)
        run.save("last.pt")
    if world.main:
        plot_run(out / "log.csv", out / "loss.png")
        write_json(out / "summary.json", run_summary(out / "log.csv", cfg, method.name))
        if run.board:
            run.board.close()
    if world.size > 1:
        _check_ranks_agree(method, world)
    return out / "last.pt"


def _start(run: Run, resume: bool) -> None:
    """Restore the run's state from last.pt (with `resume`), write its config, trim its log to the checkpoint."""
    last = run.out / "last.pt"
    if resume and last.exists():
        ckpt = load_checkpoint(last)
        if ckpt["method"] != run.method.name:
            raise TrainingError(f"{last} was written by method {ckpt['method']!r}, not {run.method.name!r}")
        restore_method(run.method, ckpt)
        run.opt.load_state_dict(ckpt["optimizer"])
        p = ckpt["progress"]
        run.progress = Progress(p["step"], p["epoch"], p.get("best", -math.inf), p.get("elapsed", 0.0))
        log.info("resumed %s at epoch %d, step %d", last, p["epoch"], p["step"])
    elif resume:
        log.info("nothing to resume in %s: starting afresh", run.out)
    if run.world.main:
        run.out.mkdir(parents=True, exist_ok=True)
        save_config(run.cfg, run.out / "config.yaml")
        trim_log(run.out / "log.csv", run.progress.step, run.fields)


def _check_disk(run: Run) -> None:
    """Refuse, before the first step, a run whose checkpoints would not fit on the disk of its folder:
    last.pt (twice while it is replaced atomically), best.pt with a selecting check, and the
    numbered checkpoints still to come (every `train.checkpoint_every` epochs and the last)."""
    cfg, p = run.cfg, run.progress
    end = cfg.optim.epochs
    if cfg.train.max_steps:
        end = min(end, -(-cfg.train.max_steps // run.sampler.batches_per_epoch))
    every = cfg.train.checkpoint_every
    numbered = end // every - p.epoch // every + (end % every > 0 and end > p.epoch)
    files = numbered + 2 + (1 if run.check and run.check.select else 0)
    size = checkpoint_bytes(run.method, run.opt)
    free = shutil.disk_usage(run.out).free
    if files * size > free:
        raise TrainingError(
            f"this run needs {files * size / 1e9:.1f} GB for its checkpoints ({numbered} numbered, one every "
            f"train.checkpoint_every={every} epochs, and last.pt/best.pt, "
            f"{size / 1e9:.2f} GB each) but {run.out} has {free / 1e9:.1f} GB free: raise train.checkpoint_every "
            f"or make room")


def train_one_epoch(run: Run, loader: torch.utils.data.DataLoader, gen: torch.Generator, progress: bool) -> None:
    """The steps of the current epoch from where the run stands, logging and checkpointing as configured."""
    cfg, p, sampler = run.cfg, run.progress, run.sampler
    steps_per_epoch = sampler.batches_per_epoch
    total, warmup = cfg.optim.epochs * steps_per_epoch, round(cfg.optim.warmup_epochs * steps_per_epoch)
    base_lr = cfg.optim.lr * cfg.train.batch_size * run.world.size / cfg.optim.lr_batch
    use_amp = cfg.train.amp and run.world.device.type == "cuda"
    sampler.epoch, sampler.start_batch = p.epoch, p.step - p.epoch * steps_per_epoch
    run.method.train()
    bar = tqdm(loader, desc=f"epoch {p.epoch}", disable=not (progress and run.world.main), unit="batch")
    for batch in bar:
        # while warming up, step s takes the rate at s + 1: the first step is not at rate 0
        lr = warmup_cosine(p.step + 1 if p.step < warmup else p.step, total, warmup, base_lr, cfg.optim.min_lr)
        for group in run.opt.param_groups:
            group["lr"] = lr
        loss, stats, taken = train_step(run.net, run.method, run.opt, to_device(batch, run.world.device), cfg, gen,
                                        p.step, use_amp, run.world.rank)
        if not taken:
            _non_finite(run, loss)
        p.step += 1
        p.window.append((loss, stats))
        rate = (p.step - run.clock[1]) * cfg.train.batch_size * run.world.size / (time.perf_counter() - run.clock[0])
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", samples_s=f"{rate:.1f}",
                        **{k: f"{v:.2f}" for k, v in stats.items()})
        if run.world.main and run.epoch_complete and run.check and run.check.due(p.epoch + 1, cfg.optim.epochs):
            p.readings = run.check.measure(run.method)
            log.info("epoch %d: %s", p.epoch + 1, ", ".join(f"{k} {v:.4f}" for k, v in p.readings.items()))
        # an epoch's last steps, and a run's, are never left unlogged
        if run.world.main and (p.step % cfg.train.log_every == 0 or run.epoch_complete or _done(p.step, cfg)):
            _log_row(run, lr, rate, run.elapsed)
        if cfg.train.checkpoint_steps and p.step % cfg.train.checkpoint_steps == 0:
            run.save("last.pt")
        if _done(p.step, cfg):
            break


def _non_finite(run: Run, loss: float) -> None:
    p, last = run.progress, run.out / "last.pt"
    if run.cfg.train.nan_policy == "stop":
        raise TrainingError(f"non-finite loss at epoch {p.epoch}, step {p.step} (this process's: {loss}); the "
                            f"last good checkpoint is {last if last.exists() else 'not written yet'}")
    log.warning("non-finite loss at step %d: step skipped (nan_policy=skip)", p.step)


def _log_row(run: Run, lr: float, rate: float, elapsed: float) -> None:
    """One log.csv row: means over the steps since the last row; an epoch's last row carries its readings."""
    p = run.progress
    losses = [loss for loss, _ in p.window]
    stats = [float(np.mean([s[k] for _, s in p.window])) for k in run.method.stat_names]
    row = ([p.step, p.epoch, float(np.mean(losses)), *stats, lr, rate, elapsed]
           + [p.readings.get(k, "") for k in (run.check.fields if run.check else ())])
    append_csv_row(run.out / "log.csv", run.fields, row)
    if run.board:
        board_row(run.board, run.fields, row)
    p.window.clear()


def _end_epoch(run: Run) -> None:
    """Numbered checkpoint, best.pt if this epoch's reading is the best, plot."""
    p, cfg = run.progress, run.cfg
    p.epoch += 1
    readings, p.readings = p.readings, {}
    if run.check and run.check.select and run.check.select in readings and readings[run.check.select] > p.best:
        p.best = readings[run.check.select]
        run.save("best.pt")
    if p.epoch % cfg.train.checkpoint_every == 0 or p.epoch == cfg.optim.epochs:
        run.save(f"epoch{p.epoch:04d}.pt")
        if run.world.main:
            plot_run(run.out / "log.csv", run.out / "loss.png")


def _done(step: int, cfg: Config) -> bool:
    return bool(cfg.train.max_steps) and step >= cfg.train.max_steps


def _check_ranks_agree(model: torch.nn.Module, world: World) -> None:
    """Under DDP, confirm every rank ends with the same weights (logged, raises if not)."""
    sums = weight_checksums(model, world)
    if len(set(sums)) != 1:
        raise TrainingError(f"ranks disagree on the weights: {sums}")
    log.info("all %d ranks hold the same weights (checksum %.6f)", world.size, sums[0])
