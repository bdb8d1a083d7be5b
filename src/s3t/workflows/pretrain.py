"""`s3t pretrain`: self-supervised pre-training on a CQT cache (MoCo v2 by default: S3T), one
process or many (torchrun), through the one training loop of `s3t.engine`.

The method is `train.method` (`s3t.methods`); its two views of each item come from
`TwoCropDataset` (log-CQT crops) or, for a waveform encoder, `TwoWaveCrops` (audio crops).
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from s3t import augment
from s3t.cache import Cache, Corpus, open_corpus
from s3t.config import AugmentConfig, Config
from s3t.engine import EpochCheck, TrainingError, fit, seed_of, setup_distributed
from s3t.methods import Method, build_method
from s3t.monitor import Monitor
from s3t.runlog import open_tensorboard

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
             split: str | None = None, progress: bool = True, monitor: Monitor | None = None) -> Path:
    """Pre-train `cfg.train.method` on the cache `data`, or several read as one corpus (their `split`
    tracks only, if given), writing logs and checkpoints to `out`; returns last.pt. With a `monitor`,
    its validation readings are taken every `train.monitor_every` epochs and the checkpoint with the
    best probe reading is kept as best.pt."""
    ctx = setup_distributed(cfg.train.device)
    cache = open_corpus(data)
    cache.verify()  # a damaged shard would train on garbage without a sound
    tracks = select_tracks(cache, split)
    G = cfg.train.batch_size * ctx.world
    if len(tracks) < G:
        raise TrainingError(f"{len(tracks)} tracks, fewer than one global batch of {G}; lower train.batch_size")
    torch.manual_seed(seed_of(cfg.train.seed, 0))  # initial weights and queue: the same on every rank
    method = build_method(cfg)
    method.check_batch(G, len(tracks))
    check, compression = None, int(cache.meta.get("time_compression", 1))
    if monitor is not None:
        check = EpochCheck(lambda m: monitor.measure(m.encoder, cfg.model, compression), ("knn_top1", "probe_top1"),
                           cfg.train.monitor_every, select="probe_top1")
    last = fit(method, two_view_dataset(method, cache, tracks, cfg), cfg, out, resume=resume, progress=progress,
               check=check, cache_meta=cache.meta)
    if monitor is not None and cfg.train.tensorboard and ctx.main:
        _projector(Path(out) / "tensorboard", monitor, method, cfg, compression)
    return last


def _projector(folder: Path, monitor: Monitor, method: Method, cfg: Config, compression: int) -> None:
    """The monitor set as the trained encoder sees it, for TensorBoard's embedding projector."""
    features, labels = monitor.features(method.encoder, cfg.model, compression)
    board = open_tensorboard(folder)
    board.add_embedding(torch.from_numpy(features), metadata=[monitor.classes[i] for i in labels], tag="monitor")
    board.close()
