"""The views a method trains on: torch `Dataset`s over a cache, each item keyed by (epoch, index)
as `s3t.training.loader.EpochSampler` yields it, its randomness drawn from (seed, epoch, item), so
persistent workers need no state from the main process and a resumed run draws the same crops."""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from s3t.audio.decode import load_audio
from s3t.config.schema import AugmentConfig
from s3t.data.cache import Cache, Corpus, track_names
from s3t.seeds import seed_of
from s3t.transforms import augment
from s3t.transforms.augment import loop_to


def track_groups(cache: Cache | Corpus) -> list[int]:
    """An integer per cache entry naming the track it comes from: the clips of a track share it."""
    ids: dict[str, int] = {}
    return [ids.setdefault(name, len(ids)) for name in track_names(cache)]


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
                return loop_to(torch.from_numpy(np.array(self.cache[item], dtype=np.float32)), self.frames)[:, : self.frames]
            start = int(torch.randint(0, total - self.frames + 1, (1,), generator=gen))
            return torch.from_numpy(np.array(self.cache.crop(item, start, self.frames), dtype=np.float32))
        (start, n), = augment.sample_crop_windows(total, self.cfg.crop_ratio, 1, gen)
        return self._resized(item, start, n)

    def _resized(self, item: int, start: int, length: int) -> torch.Tensor:
        return augment.resized_crop(partial(self.cache.frames_at, item), start, length, self.frames)


class TwoWaveCrops(torch.utils.data.Dataset):
    """Two random crops (2, samples) float32 of item i's audio (a clip's own span for clip caches),
    and the item's index (SimCLR's negatives are the batch, so no track id is needed)."""

    def __init__(self, cache: Cache | Corpus, indices: list[int], samples: int, seed: int):
        self.items = [cache.audio_span(i) for i in indices]
        self.samples, self.seed = samples, seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, i = key
        source, start, seconds = self.items[i]
        wave = loop_to(torch.from_numpy(load_audio(source, offset=start, duration=seconds)), self.samples)
        gen = torch.Generator().manual_seed(seed_of(self.seed, epoch, i))
        starts = torch.randint(0, len(wave) - self.samples + 1, (2,), generator=gen).tolist()
        return torch.stack([wave[s : s + self.samples] for s in starts]), i


class LabeledCrops(torch.utils.data.Dataset):
    """One random crop per cached item (the pre-training crop ratio, resized to the input frames),
    (84, frames), with its target: a class index or a multi-hot tag vector."""

    def __init__(self, cache: Cache, indices: list[int], targets: torch.Tensor, frames: int,
                 crop_ratio: tuple[float, float], seed: int):
        self.cache, self.indices, self.targets = cache, indices, targets
        self.frames, self.crop_ratio, self.seed = frames, crop_ratio, seed

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, i = key
        item = self.indices[i]
        gen = torch.Generator().manual_seed(seed_of(self.seed, epoch, item))
        ((start, n),) = augment.sample_crop_windows(int(self.cache.frames[item]), self.crop_ratio, 1, gen)
        return augment.resized_crop(partial(self.cache.frames_at, item), start, n, self.frames), self.targets[i]
