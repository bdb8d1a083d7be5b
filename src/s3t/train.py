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


def track_groups(cache: Cache | Corpus) -> list[int]:
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

    def __init__(self, cache: Cache | Corpus, indices: list[int], frames: int, cfg: AugmentConfig, seed: int):
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
            return torch.stack([self._resized(item, s, n) for s, n in windows]), self.groups[item]
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
        return self._resized(item, start, n)

    def _resized(self, item: int, start: int, length: int) -> torch.Tensor:
        return augment.resized_crop(partial(self.cache.frames_at, item), start, length, self.frames)


def select_tracks(cache: Cache | Corpus, split: str | None) -> list[int]:
    if split is None:
        return list(range(len(cache)))
    splits = cache.column("split")
    chosen = [i for i, s in enumerate(splits) if s == split]
    if not chosen:
        raise TrainingError(f"no track of {cache.root} has split {split!r} (splits present: {sorted(set(splits))})")
    return chosen


def two_view_dataset(method: Method, cache: Cache | Corpus, items: list[int], cfg: Config
                     ) -> torch.utils.data.Dataset:
    """The two views of each item that `method`'s encoder takes: audio crops or log-CQT crops."""
    if method.encoder.input_kind == "wave":
        from s3t.clmr import TwoWaveCrops

        return TwoWaveCrops(cache, items, cfg.train.seed)
    return TwoCropDataset(cache, items, cfg.model.frames, cfg.augment, cfg.train.seed)


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
