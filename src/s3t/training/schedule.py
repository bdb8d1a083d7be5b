"""The learning-rate schedule every training shares: the engine's (per step) and the probe's (per epoch)."""

from __future__ import annotations

import math


def warmup_cosine(t: float, total: float, warmup: float, base_lr: float, min_lr: float = 0.0) -> float:
    """At time t (steps or epochs): linear warm-up from 0 to base_lr over `warmup`, then cosine
    decay to min_lr at `total`."""
    if t < warmup:
        return base_lr * t / warmup
    progress = min(1.0, (t - warmup) / max(1, total - warmup))
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))
