"""`s3t pretrain`: MoCo v2 pre-training on a CQT cache, one process or many (torchrun).

Reproducibility by construction: the data order is a permutation drawn from (seed, epoch),
each item's crops from (seed, epoch, item), and augmentation and drop-path from (seed, step).
A run resumed from a checkpoint therefore replays exactly what an uninterrupted run does,
whatever the number of DataLoader workers.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from s3t import __version__, augment
from s3t.cache import Cache, open_cache
from s3t.checkpoint import load_checkpoint, save_checkpoint
from s3t.config import AugmentConfig, Config, save_config
from s3t.files import append_csv_row, atomic_write, write_json
from s3t.models import build_encoder
from s3t.moco import MoCo
from s3t.monitor import Monitor
from s3t.plots import pyplot, save_figure
from s3t.preprocess import input_frames, normalize_db, to_model_input

log = logging.getLogger(__name__)

# loss and acc1 are means over the steps since the previous row; knn_top1 and probe_top1 are the
# --monitor set's validation readings, in the row that ends an epoch where they were taken (else empty)
LOG_FIELDS = ["step", "epoch", "loss", "acc1", "lr", "samples_per_s", "elapsed_s", "knn_top1", "probe_top1"]
MONITOR_FIELDS = ["knn_top1", "probe_top1"]


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss under nan_policy=stop, too little data …)."""


def cosine_lr(step: int, total_steps: int, warmup_steps: int, base_lr: float, min_lr: float = 0.0) -> float:
    """Linear warm-up from 0 to base_lr over warmup_steps, then cosine decay to min_lr."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def seed_of(*parts: int) -> int:
    """A 63-bit seed derived from integers (stable across runs and processes)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0] >> 1)


def track_groups(cache: Cache) -> list[int]:
    """An integer per cache entry naming the track it comes from: the clips of a track share it."""
    names = cache.column("track") if cache.meta.get("clip_seconds") else cache.track_ids
    ids: dict[str, int] = {}
    return [ids.setdefault(name or tid, len(ids)) for name, tid in zip(names, cache.track_ids)]


class TwoCropDataset(torch.utils.data.Dataset):
    """Two random crops of cached items, at the model's input frames: (2, 84, T), and the id of
    the track they come from.

    `augment.crop`: ratio (a crop_ratio share of the item, resized) or native (exactly `frames`
    frames, looped where the item is shorter). `augment.positives`: item (both crops from the item)
    or track (the second from a clip of the same track drawn at random, itself included)."""

    def __init__(self, cache: Cache, indices: list[int], frames: int, cfg: AugmentConfig, seed: int):
        self.cache, self.indices, self.frames, self.cfg, self.seed = cache, indices, frames, cfg, seed
        self.groups = track_groups(cache)
        chosen = set(indices)
        self.clips_of: dict[int, list[int]] = {}  # track group -> its items among `indices`
        for i, g in enumerate(self.groups):
            if i in chosen:
                self.clips_of.setdefault(g, []).append(i)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        """key = (epoch, i), as EpochSampler yields it: the crops depend on both, so persistent
        workers need no state from the main process."""
        epoch, i = key
        item = self.indices[i]
        gen = torch.Generator().manual_seed(seed_of(self.seed, epoch, item))
        if self.cfg.positives == "item" and self.cfg.crop == "ratio":  # the paper's: both windows in one draw
            windows = augment.sample_crop_windows(int(self.cache.frames[item]), self.cfg.crop_ratio, 2, gen)
            crops = [torch.from_numpy(np.array(self.cache.crop(item, s, n), dtype=np.float32)) for s, n in windows]
            return torch.stack([augment.resize_time(c, self.frames) for c in crops]), self.groups[item]
        second = item
        if self.cfg.positives == "track":
            clips = self.clips_of[self.groups[item]]
            second = clips[int(torch.randint(len(clips), (1,), generator=gen))]
        crops = [self._crop(item, gen), self._crop(second, gen)]
        return torch.stack(crops), self.groups[item]  # (2, 84, T)

    def _crop(self, item: int, gen: torch.Generator) -> torch.Tensor:
        total = int(self.cache.frames[item])
        if self.cfg.crop == "native":
            if total < self.frames:  # loop a short item up to the input length
                x = torch.from_numpy(np.array(self.cache[item], dtype=np.float32))
                return x.repeat(1, -(-self.frames // total))[:, : self.frames]
            start = int(torch.randint(0, total - self.frames + 1, (1,), generator=gen))
            return torch.from_numpy(np.array(self.cache.crop(item, start, self.frames), dtype=np.float32))
        (start, n), = augment.sample_crop_windows(total, self.cfg.crop_ratio, 1, gen)
        crop = torch.from_numpy(np.array(self.cache.crop(item, start, n), dtype=np.float32))
        return augment.resize_time(crop, self.frames)


class EpochSampler(torch.utils.data.Sampler):
    """This rank's share of a (seed, epoch) permutation, whole global batches only, from a batch on;
    yields (epoch, index) pairs."""

    def __init__(self, n: int, batch: int, rank: int, world: int, seed: int):
        self.n, self.batch, self.rank, self.world, self.seed = n, batch, rank, world, seed
        self.epoch, self.start_batch = 0, 0
        self.batches_per_epoch = n // (batch * world)

    def __iter__(self):
        perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(seed_of(self.seed, self.epoch)))
        G = self.batch * self.world
        for b in range(self.start_batch, self.batches_per_epoch):
            for i in perm[b * G + self.rank * self.batch : b * G + (self.rank + 1) * self.batch].tolist():
                yield self.epoch, i

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> Dist:
    """Join the torchrun group when WORLD_SIZE > 1 (NCCL on GPU, gloo on CPU)."""
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(f"cuda:{local}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Dist(int(os.environ.get("RANK", "0")), world, dev)


def select_tracks(cache: Cache, split: str | None) -> list[int]:
    if split is None:
        return list(range(len(cache)))
    splits = cache.column("split")
    chosen = [i for i, s in enumerate(splits) if s == split]
    if not chosen:
        raise TrainingError(f"no track of {cache.root} has split {split!r} (splits present: {sorted(set(splits))})")
    return chosen


def build_model(cfg: Config) -> MoCo:
    if cfg.model.preprocessor == "time_fold" and 84 * cfg.model.fold > cfg.model.input_size:
        raise ValueError(f"time_fold stacks {cfg.model.fold} × 84 bins = {84 * cfg.model.fold} rows, more than "
                         f"model.input_size {cfg.model.input_size}; lower model.fold")
    return MoCo(build_encoder(cfg.model), cfg.moco)


def model_input(views: torch.Tensor, cfg: Config) -> torch.Tensor:
    """(N, 84, frames) log-CQTs -> (N, 1, S, S) normalised model input."""
    return normalize_db(to_model_input(views, cfg.model.preprocessor, cfg.model.input_size, cfg.model.segments))


def pretrain(cfg: Config, data: str | Path, out: str | Path, resume: bool = False, split: str | None = None,
             progress: bool = True, monitor: Monitor | None = None) -> Path:
    """Pre-train MoCo on the cache `data`, writing logs and checkpoints to `out`; returns last.pt.
    With a `monitor`, its validation readings are taken every `train.monitor_every` epochs."""
    out = Path(out)
    ctx = setup_distributed(cfg.train.device)
    cache = open_cache(data)
    cache.verify()  # a damaged shard would train on garbage without a sound
    tracks = select_tracks(cache, split)
    G = cfg.train.batch_size * ctx.world
    if len(tracks) < G:
        raise TrainingError(f"{len(tracks)} tracks, fewer than one global batch of {G}; lower train.batch_size")
    if cfg.moco.queue_size % G:
        raise ValueError(f"moco.queue_size {cfg.moco.queue_size} must be a multiple of the global batch {G}")
    if cfg.moco.queue_size > len(tracks) - G and not cfg.moco.mask_same_track:
        log.warning("moco.queue_size %d is not smaller than the %d tracks minus a batch: tracks will meet their "
                    "own older keys as negatives; a queue of at most %d fits this corpus",
                    cfg.moco.queue_size, len(tracks), (len(tracks) - G) // G * G)

    torch.manual_seed(seed_of(cfg.train.seed, 0))  # initial weights and queue: the same on every rank
    model = build_model(cfg).to(ctx.device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.optim.lr,
                            weight_decay=cfg.optim.weight_decay)
    frames = input_frames(cfg.model.preprocessor, cfg.model.input_size, cfg.model.segments)
    dataset = TwoCropDataset(cache, tracks, frames, cfg.augment, cfg.train.seed)
    sampler = EpochSampler(len(tracks), cfg.train.batch_size, ctx.rank, ctx.world, cfg.train.seed)
    steps_per_epoch = sampler.batches_per_epoch
    total = cfg.optim.epochs * steps_per_epoch
    warmup = round(cfg.optim.warmup_epochs * steps_per_epoch)
    base_lr = cfg.optim.lr * G / cfg.optim.lr_batch

    step = epoch = 0
    last = out / "last.pt"
    if resume and last.exists():
        ckpt = load_checkpoint(last)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, epoch = ckpt["step"], ckpt["epoch"]
        log.info("resumed %s at epoch %d, step %d", last, epoch, step)
    elif resume:
        log.info("nothing to resume in %s: starting afresh", out)
    if ctx.main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        _trim_log(out / "log.csv", step)

    net = torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False) if ctx.world > 1 else model
    use_amp = cfg.train.amp and ctx.device.type == "cuda"
    gen = torch.Generator(device=ctx.device)
    start_time, seen = time.perf_counter(), 0
    window: list[tuple[float, float]] = []  # (loss, acc1) of the steps since the last log row

    def checkpoint(name: str, at_epoch: int) -> None:
        if ctx.main:
            save_checkpoint(out / name, {"version": __version__, "config": cfg.to_dict(), "model": model.state_dict(),
                                         "optimizer": opt.state_dict(), "step": step, "epoch": at_epoch,
                                         "cache_meta": cache.meta})

    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.train.batch_size, sampler=sampler,
                                         num_workers=cfg.train.workers, drop_last=True,
                                         pin_memory=ctx.device.type == "cuda",
                                         persistent_workers=cfg.train.workers > 0)
    while epoch < cfg.optim.epochs and not _done(step, cfg):
        sampler.epoch = epoch
        sampler.start_batch = step - epoch * steps_per_epoch
        bar = tqdm(loader, desc=f"epoch {epoch}", disable=not (progress and ctx.main), unit="batch")
        for views, groups in bar:
            lr = cosine_lr(step, total, warmup, base_lr, cfg.optim.min_lr)
            for group in opt.param_groups:
                group["lr"] = lr
            loss, acc1 = train_step(net, model, opt, views.to(ctx.device, non_blocking=True),
                                    groups.to(ctx.device), cfg, gen, step, use_amp)
            if not math.isfinite(loss):
                if cfg.train.nan_policy == "stop":
                    raise TrainingError(f"non-finite loss ({loss}) at epoch {epoch}, step {step}; the last good "
                                        f"checkpoint is {last if last.exists() else 'not written yet'}")
                log.warning("non-finite loss at step %d: step skipped (nan_policy=skip)", step)
            step += 1
            seen += G
            window.append((loss, acc1))
            rate = seen / (time.perf_counter() - start_time)
            bar.set_postfix(loss=f"{loss:.4f}", acc1=f"{acc1:.2f}", lr=f"{lr:.2e}", samples_s=f"{rate:.1f}")
            ends_epoch = step == (epoch + 1) * steps_per_epoch
            if ctx.main and (step % cfg.train.log_every == 0 or step == total or ends_epoch):
                readings = _monitor_readings(monitor, model, cfg, cache, epoch + 1) if ends_epoch else {}
                mean_loss, mean_acc = (sum(v) / len(window) for v in zip(*window))
                append_csv_row(out / "log.csv", LOG_FIELDS,
                               [step, epoch, mean_loss, mean_acc, lr, rate, time.perf_counter() - start_time]
                               + [readings.get(k, "") for k in MONITOR_FIELDS])
                window.clear()
            if cfg.train.checkpoint_steps and step % cfg.train.checkpoint_steps == 0:
                checkpoint("last.pt", epoch)
            if _done(step, cfg):
                break
        if step == (epoch + 1) * steps_per_epoch:  # the epoch is complete
            epoch += 1
            if epoch % cfg.train.checkpoint_every == 0 or epoch == cfg.optim.epochs:
                checkpoint(f"epoch{epoch:04d}.pt", epoch)
                if ctx.main:
                    plot_loss(out / "log.csv", out / "loss.png")
        checkpoint("last.pt", epoch)
    if ctx.main:
        plot_loss(out / "log.csv", out / "loss.png")
        write_json(out / "summary.json", run_summary(out / "log.csv", cfg))
    _check_ranks_agree(model, ctx)
    return last


def run_summary(log_csv: Path, cfg: Config) -> dict:
    """What a finished run reached, from its log: steps, wall time, last loss and acc@1, and the
    monitor's readings (last and best) where it had one."""
    rows = _read_log(log_csv)
    summary: dict = {"model": cfg.model.name, "epochs": cfg.optim.epochs}
    if rows:
        last = rows[-1]
        summary |= {"steps": int(last["step"]), "elapsed_s": float(last["elapsed_s"]),
                    "last_loss": float(last["loss"]), "last_acc1": float(last["acc1"])}
    for key in MONITOR_FIELDS:
        readings = [(float(r[key]), int(r["step"])) for r in rows if r.get(key)]
        if readings:
            summary[f"monitor_{key}"] = {"last": readings[-1][0], "best": max(readings)[0],
                                         "best_step": max(readings)[1]}
    return summary


def train_step(net: torch.nn.Module, model: MoCo, opt: torch.optim.Optimizer, views: torch.Tensor,
               groups: torch.Tensor | None, cfg: Config, gen: torch.Generator, step: int, use_amp: bool
               ) -> tuple[float, float]:
    """One MoCo step on a batch of two-view crops (B, 2, 84, T) from tracks `groups` (B,); returns the loss and the
    fraction of queries whose positive key scores above every negative (MoCo's acc@1)."""
    torch.manual_seed(seed_of(cfg.train.seed, step, 1))  # drop-path
    gen.manual_seed(seed_of(cfg.train.seed, step, 2))  # augmentation
    B = views.shape[0]
    x = model_input(augment.augment_views(views, cfg.augment, gen).flatten(0, 1), cfg).unflatten(0, (B, 2))
    with torch.autocast(views.device.type, dtype=torch.bfloat16, enabled=use_amp):
        logits, labels = net(x[:, 0], x[:, 1], groups)  # (B, 1 + K), (B,)
    loss = F.cross_entropy(logits.float(), labels)
    acc1 = float((logits.detach().argmax(1) == labels).float().mean())
    opt.zero_grad(set_to_none=True)
    if not torch.isfinite(loss):
        return float(loss.detach()), acc1
    loss.backward()
    if cfg.optim.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
    opt.step()
    return float(loss.detach()), acc1


def _monitor_readings(monitor: Monitor | None, model: MoCo, cfg: Config, cache: Cache, epoch: int) -> dict:
    if monitor is None or (epoch % cfg.train.monitor_every and epoch != cfg.optim.epochs):
        return {}
    readings = monitor.measure(model.encoder_q, cfg.model, int(cache.meta.get("time_compression", 1)))
    log.info("epoch %d: monitor %s k-NN top-1 %.3f, linear probe top-1 %.3f", epoch, monitor.name,
             readings["knn_top1"], readings["probe_top1"])
    return readings


def _done(step: int, cfg: Config) -> bool:
    return bool(cfg.train.max_steps) and step >= cfg.train.max_steps


def _check_ranks_agree(model: torch.nn.Module, ctx: Dist) -> None:
    """Under DDP, confirm every rank ends with the same query encoder (logged, raises if not)."""
    if ctx.world == 1:
        return
    total = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
    parts = [torch.zeros_like(total) for _ in range(ctx.world)]
    dist.all_gather(parts, total)
    if len({float(p) for p in parts}) != 1:
        raise TrainingError(f"ranks disagree on the weights: {[float(p) for p in parts]}")
    log.info("all %d ranks hold the same weights (checksum %.6f)", ctx.world, float(total))


def _read_log(path: Path) -> list[dict]:
    """The complete rows of a run's log (a row cut short by a kill or a full disk is dropped)."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    core = [k for k in LOG_FIELDS if k not in MONITOR_FIELDS]
    return [r for r in rows if all(r.get(k) not in (None, "") for k in core) and r["step"].isdigit()]


def _trim_log(path: Path, step: int) -> None:
    """Drop log rows past `step` (written after the checkpoint a resumed run starts from)."""
    if not path.exists():
        return
    rows = [r for r in _read_log(path) if int(r["step"]) <= step]
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, LOG_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def plot_loss(log_csv: Path, png: Path) -> None:
    """Loss and learning rate against step, from the run's CSV log; below them, the monitor's
    validation top-1 where the run has one."""
    rows = _read_log(log_csv)
    if not rows:
        return
    plt = pyplot()
    steps = [int(r["step"]) for r in rows]
    watched = [r for r in rows if r.get("knn_top1")]
    fig, axes = plt.subplots(2 if watched else 1, 1, figsize=(7, 6.5 if watched else 4), squeeze=False)
    ax = axes[0, 0]
    ax.plot(steps, [float(r["loss"]) for r in rows], label="InfoNCE loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    lr_ax = ax.twinx()
    lr_ax.plot(steps, [float(r["lr"]) for r in rows], color="tab:orange", alpha=0.6, label="lr")
    lr_ax.set_ylabel("learning rate")
    ax.legend(loc="upper left")
    lr_ax.legend(loc="upper right")
    if watched:
        ax = axes[1, 0]
        for key, label in (("knn_top1", "k-NN (k = 20)"), ("probe_top1", "linear probe")):
            ax.plot([int(r["step"]) for r in watched], [float(r[key]) for r in watched], marker="o", label=label)
        ax.set_xlabel("step")
        ax.set_ylabel("validation top-1 (monitor)")
        ax.legend()
    save_figure(fig, png)
