"""The music augmentation pipeline (paper section 2.3) as batched torch ops.

Every transform takes a batch (B, F, T) of log-CQTs on any device and a `torch.Generator`
on that device, decides per item whether it applies (probability p), and fills what it
vacates or masks with `fill` (the log floor, i.e. silence). Multi-crop runs per track where
the data lives (it needs random access to the cache); the rest runs on whole batches.
"""

from __future__ import annotations

import numpy as np
import torch

from s3t.audio.constant_q import FLOOR_DB
from s3t.config.schema import AugmentConfig


def _rand(shape: tuple, gen: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return torch.rand(shape, generator=gen, device=device)


def _randint(low: int, high: int, shape: tuple, gen: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Uniform integers in [low, high], both inclusive."""
    return torch.randint(low, high + 1, shape, generator=gen, device=device)


def _applies(batch: int, p: float, gen: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return _rand((batch,), gen, device) < p  # (B,) bool


# --- multi-crop -----------------------------------------------------------------------------


def sample_crop_windows(
    total_frames: int, ratio: tuple[float, float], n_crops: int = 2, gen: torch.Generator | None = None
) -> list[tuple[int, int]]:
    """(start, length) of `n_crops` crops, length = round(T·r) with r ~ U[ratio], at uniform positions."""
    r = ratio[0] + (ratio[1] - ratio[0]) * torch.rand(n_crops, generator=gen)
    windows = []
    for length in (r * total_frames).round().long().clamp(1, total_frames).tolist():
        start = int(torch.randint(0, total_frames - length + 1, (1,), generator=gen))
        windows.append((start, length))
    return windows


def resize_time(x: torch.Tensor, n_frames: int) -> torch.Tensor:
    """Linear interpolation along time: (…, F, L) -> (…, F, n_frames)."""
    lead, (F, L) = x.shape[:-2], x.shape[-2:]
    y = torch.nn.functional.interpolate(x.reshape(-1, F, L).float(), size=n_frames, mode="linear",
                                        align_corners=False)
    return y.reshape(*lead, F, n_frames)


def linear_taps(length: int, n_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where `resize_time` of `length` frames to `n_frames` reads: for each output frame, its two
    source frames and the weight of the second (PyTorch's linear, align_corners=False, in float32)."""
    scale = np.float32(length) / np.float32(n_frames)
    source = np.maximum(scale * (np.arange(n_frames, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5),
                        np.float32(0))
    first = source.astype(np.int64)
    return first, np.minimum(first + 1, length - 1), (source - first).astype(np.float32)


def resized_crop(read, start: int, length: int, n_frames: int) -> torch.Tensor:
    """Frames [start, start + length) resized to n_frames, as `resize_time` does, from `read(positions)`
    -> (F, len(positions)). At most 2 · n_frames frames are read (the ones the interpolation uses),
    so the cost does not grow with the crop, or the track it is cut from."""
    if length <= 2 * n_frames:  # (nearly) every frame is used: read them all, let PyTorch resize
        return resize_time(torch.from_numpy(np.array(read(np.arange(start, start + length)), dtype=np.float32)),
                           n_frames)
    first, second, weight = linear_taps(length, n_frames)
    a = np.asarray(read(start + first), dtype=np.float32)
    b = np.asarray(read(start + second), dtype=np.float32)
    return torch.from_numpy(a * (1 - weight) + b * weight)


def loop_to(x: torch.Tensor, n: int) -> torch.Tensor:
    """`x` (…, T) repeated along its last axis until it holds at least n samples (itself if it does)."""
    return x.repeat(*([1] * (x.ndim - 1)), -(-n // max(1, x.shape[-1])))


# --- masking --------------------------------------------------------------------------------


def _band_mask(count: torch.Tensor, widths: torch.Tensor, size: int, max_total: int,
               gen: torch.Generator | None) -> torch.Tensor:
    """Mask (B, size) of up to K bands per item: the first `count` of `widths` (B, K) that fit.

    Bands are kept in order while their running total stays within `max_total` (a prefix),
    then placed at uniform positions; overlapping bands only shrink the masked total.
    """
    B, K = widths.shape
    device = widths.device
    widths = widths * (torch.arange(K, device=device) < count[:, None])  # (B, K): unused bands 0
    widths = widths * (widths.cumsum(1) <= max_total)
    starts = (_rand((B, K), gen, device) * (size - widths + 1)).long()  # (B, K) in [0, size - w]
    pos = torch.arange(size, device=device)[None, None, :]  # (1, 1, size)
    inside = (pos >= starts[..., None]) & (pos < (starts + widths)[..., None])  # (B, K, size)
    return inside.any(1)  # (B, size)


def freq_mask(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator | None = None,
              fill: float = FLOOR_DB) -> torch.Tensor:
    """Mask N ~ U{count} frequency bands of F ~ U{width} bins; at most max_fraction of the bins."""
    B, F, T = x.shape
    K = cfg.freq_mask_count[1]
    count = _randint(*cfg.freq_mask_count, (B,), gen, x.device)
    widths = _randint(*cfg.freq_mask_width, (B, K), gen, x.device)
    mask = _band_mask(count, widths, F, int(cfg.freq_mask_max_fraction * F), gen)  # (B, F)
    mask &= _applies(B, cfg.freq_mask_p, gen, x.device)[:, None]
    return x.masked_fill(mask[:, :, None], fill)


def time_mask(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator | None = None,
              fill: float = FLOOR_DB) -> torch.Tensor:
    """Mask N ~ U{count} segments of T·r frames, r ~ U[ratio]; at most max_fraction of the frames."""
    B, F, T = x.shape
    K = cfg.time_mask_count[1]
    lo, hi = cfg.time_mask_ratio
    count = _randint(*cfg.time_mask_count, (B,), gen, x.device)
    widths = ((lo + (hi - lo) * _rand((B, K), gen, x.device)) * T).round().long().clamp_min(1)
    mask = _band_mask(count, widths, T, int(cfg.time_mask_max_fraction * T), gen)  # (B, T)
    mask &= _applies(B, cfg.time_mask_p, gen, x.device)[:, None]
    return x.masked_fill(mask[:, None, :], fill)


# --- warping and shifting -------------------------------------------------------------------


def _gather_time(x: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """Sample x (B, F, T) at fractional time positions src (B, T) by linear interpolation."""
    T = x.shape[-1]
    i0 = src.floor().clamp(0, T - 2).long()  # (B, T)
    frac = (src - i0).to(x.dtype)[:, None, :]  # (B, 1, T)
    left = x.gather(2, i0[:, None, :].expand_as(x))
    right = x.gather(2, (i0 + 1)[:, None, :].expand_as(x))
    return torch.lerp(left, right, frac)  # exact at frac 0 and 1: the end frames stay bit-equal


def time_warp(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator | None = None) -> torch.Tensor:
    """SpecAugment time warp: a point c ~ U(W, T−1−W) moves to c + w, w ~ U[−W, W].

    Both sides of the point are stretched linearly, so frame 0 and the last frame stay put.
    Items shorter than 2W + 2 frames are left unchanged.
    """
    B, F, T = x.shape
    W = cfg.warp_max
    if W == 0 or T < 2 * W + 2:
        return x
    applied = _applies(B, cfg.warp_p, gen, x.device)
    c = W + (T - 1 - 2 * W) * _rand((B, 1), gen, x.device)  # (B, 1) the point, in (W, T−1−W)
    moved = c + W * (2 * _rand((B, 1), gen, x.device) - 1)  # (B, 1) where it goes
    t = torch.arange(T, device=x.device, dtype=torch.float32)[None, :]  # (1, T)
    end = T - 1
    src = torch.where(t <= moved, t * c / moved, end - (end - t) * (end - c) / (end - moved))  # (B, T)
    return torch.where(applied[:, None, None], _gather_time(x, src), x)


def _shift_axis(x: torch.Tensor, offset: torch.Tensor, dim: int, fill: float) -> torch.Tensor:
    """out[..., i, ...] = x[..., i − offset, ...] along `dim` (1 or 2), per item; vacated = fill."""
    size = x.shape[dim]
    idx = torch.arange(size, device=x.device)[None, :] - offset[:, None]  # (B, size)
    valid = (idx >= 0) & (idx < size)
    shape = (-1, size, 1) if dim == 1 else (-1, 1, size)
    out = x.gather(dim, idx.clamp(0, size - 1).view(shape).expand_as(x))
    return out.masked_fill(~valid.view(shape), fill)


def shift(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator | None = None,
          fill: float = FLOOR_DB) -> torch.Tensor:
    """Pitch shift (f bins) or time shift (t frames), up or down, f, t ~ U{range}; no wrap-around."""
    B = x.shape[0]
    applied = _applies(B, cfg.shift_p, gen, x.device)
    pitch = _rand((B,), gen, x.device) < 0.5
    sign = torch.where(_rand((B,), gen, x.device) < 0.5, -1, 1)
    amount = _randint(*cfg.shift_range, (B,), gen, x.device) * sign * applied
    x = _shift_axis(x, torch.where(pitch, amount, 0), 1, fill)
    return _shift_axis(x, torch.where(pitch, 0, amount), 2, fill)


# --- the pipeline ---------------------------------------------------------------------------


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator | None = None) -> torch.Tensor:
    """Time warp, shift, frequency mask, time mask, each drawn per item: (B, F, T) -> (B, F, T).

    Masks come last so that what is masked stays an exact band of the fill value.
    """
    x = time_warp(x, cfg, gen)
    x = shift(x, cfg, gen)
    x = freq_mask(x, cfg, gen)
    return time_mask(x, cfg, gen)


def augment_views(views: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator | None = None) -> torch.Tensor:
    """Augment every view independently: (B, V, F, T) multi-crops -> (B, V, F, T)."""
    B, V, F, T = views.shape
    return augment_batch(views.reshape(B * V, F, T), cfg, gen).reshape(B, V, F, T)
