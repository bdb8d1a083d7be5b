"""`s3t pretrain`: self-supervised pre-training on a CQT cache (MoCo v2 by default: S3T), one
process or many (torchrun), through the one training loop of `s3t.training.engine`.

The method is `train.method` (`s3t.methods.registry`); it says which views of each item it trains on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import torch

from s3t.config.schema import Config
from s3t.data.cache import Cache, Corpus, open_corpus
from s3t.devices import rank
from s3t.eval.monitor import Monitor, build_monitor
from s3t.methods.base import Method
from s3t.methods.registry import build_method
from s3t.seeds import seed_of
from s3t.training.engine import EpochCheck, TrainingError, fit
from s3t.training.runlog import open_tensorboard

log = logging.getLogger(__name__)


def select_tracks(cache: Cache | Corpus, split: str | None) -> list[int]:
    if split is None:
        return list(range(len(cache)))
    splits = cache.column("split")
    chosen = [i for i, s in enumerate(splits) if s == split]
    if not chosen:
        raise TrainingError(f"no track of {cache.root} has split {split!r} (splits present: {sorted(set(splits))})")
    return chosen


def pretrain(cfg: Config, data: str | Path | Sequence[str | Path], out: str | Path, resume: bool = False,
             split: str | None = None, progress: bool = True, monitor: tuple[str, str | Path] | None = None) -> Path:
    """Pre-train `cfg.train.method` on the cache `data`, or several read as one corpus (their `split`
    tracks only, if given), writing logs and checkpoints to `out`; returns last.pt. With a `monitor`
    (a labeled single-label set: its kind and root, as linear-eval takes them), its validation split is
    read every `train.monitor_every` epochs and the checkpoint with the best probe reading is kept as best.pt."""
    cache = open_corpus(data)
    cache.verify()  # a damaged shard would train on garbage without a sound
    tracks = select_tracks(cache, split)
    torch.manual_seed(seed_of(cfg.train.seed, 0))  # initial weights and queue: the same on every rank
    method = build_method(cfg)
    compression = int(cache.meta.get("time_compression", 1))
    watch = check = None
    if monitor is not None:
        watch = build_monitor(*monitor, Path(out) / "monitor", compression, float(cache.meta.get("clip_seconds", 0.0)),
                              progress=progress)
        check = EpochCheck(lambda m: watch.measure(m.encoder, cfg.model, compression), ("knn_top1", "probe_top1"),
                           cfg.train.monitor_every, select="probe_top1")
    last = fit(method, method.views(cache, tracks, cfg), cfg, out, resume=resume, progress=progress, check=check,
               cache_meta=cache.meta)
    if watch is not None and cfg.train.tensorboard and rank() == 0:
        _projector(Path(out) / "tensorboard", watch, method, cfg, compression)
    return last


def _projector(folder: Path, monitor: Monitor, method: Method, cfg: Config, compression: int) -> None:
    """The monitor set as the trained encoder sees it, for TensorBoard's embedding projector."""
    features, labels = monitor.features(method.encoder, cfg.model, compression)
    board = open_tensorboard(folder)
    board.add_embedding(torch.from_numpy(features), metadata=[monitor.classes[i] for i in labels], tag="monitor")
    board.close()
