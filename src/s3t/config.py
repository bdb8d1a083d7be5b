"""Typed configuration sections; defaults are the paper's "S3T (Ours)" setting (SPEC.md)."""

from __future__ import annotations

from dataclasses import dataclass, fields


def _check_range(name: str, pair: tuple, low: float, high: float | None = None) -> None:
    if len(pair) != 2 or pair[0] > pair[1] or pair[0] < low or (high is not None and pair[1] > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"augment.{name} must be a pair (min, max) with min <= max, both {bound}; got {pair}")


@dataclass
class AugmentConfig:
    """The music augmentation pipeline (paper section 2.3). Counts and widths are inclusive."""

    crop_ratio: tuple[float, float] = (0.1, 0.9)  # crop length as a fraction of the track
    freq_mask_p: float = 0.5
    freq_mask_count: tuple[int, int] = (1, 5)
    freq_mask_width: tuple[int, int] = (5, 30)  # bins
    freq_mask_max_fraction: float = 0.4  # of the bins, all bands together
    time_mask_p: float = 0.5
    time_mask_count: tuple[int, int] = (1, 10)
    time_mask_ratio: tuple[float, float] = (0.01, 0.2)  # of the frames, each segment
    time_mask_max_fraction: float = 0.4
    warp_p: float = 0.4
    warp_max: int = 10  # frames: the point lies in (W, T - W) and moves by up to W
    shift_p: float = 0.4
    shift_range: tuple[int, int] = (1, 10)  # bins (pitch) or frames (time)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # from YAML
                setattr(self, f.name, value := tuple(value))
            if f.name.endswith("_p") and not 0.0 <= value <= 1.0:
                raise ValueError(f"augment.{f.name} is a probability in [0, 1], got {value}")
            if f.name.endswith("max_fraction") and not 0.0 < value <= 1.0:
                raise ValueError(f"augment.{f.name} must be in (0, 1], got {value}")
        _check_range("crop_ratio", self.crop_ratio, 0.0, 1.0)
        _check_range("time_mask_ratio", self.time_mask_ratio, 0.0, 1.0)
        for name in ("freq_mask_count", "freq_mask_width", "time_mask_count", "shift_range"):
            _check_range(name, getattr(self, name), 0)
        if self.warp_max < 0:
            raise ValueError(f"augment.warp_max must be >= 0, got {self.warp_max}")
