"""Seeds derived from integers: every random stream of a run is named by the numbers that
identify it (seed, epoch, item, step), so a resumed or re-ordered run draws the same."""

from __future__ import annotations

import numpy as np


def seed_of(*parts: int) -> int:
    """A 63-bit seed derived from integers (stable across runs and processes)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0] >> 1)


def step_seed(seed: int, step: int, stream: int, rank: int = 0) -> int:
    """The seed of one random stream (1: drop-path, 2: augmentation) at one step on one rank. Each
    rank draws its own, so the global batch has the variety of one batch of its size; rank 0 draws
    what a single process draws."""
    return seed_of(seed, step, stream, *([rank] if rank else []))
