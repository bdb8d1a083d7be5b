"""95 % bootstrap intervals over test tracks: how far a probe's score could move on another draw of
tracks like these. Tracks, not clips, are resampled (a track's clips are not independent), and
each draw scores every probe seed and averages them, as the reported mean does."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

DRAWS = {False: 1000, True: 200}  # single-label; multi-label, whose macro AUCs over thousands of tracks cost more


def track_interval(metric: Callable[[np.ndarray, np.ndarray], float], scores: Sequence[np.ndarray],
                   targets: np.ndarray, tracks: Sequence[str], draws: int = 1000, seed: int = 0) -> list[float]:
    """[2.5, 97.5] percentiles of the mean over `scores` (one (N, C) array per probe seed) of
    `metric(targets, scores)`, over `draws` resamples of the distinct `tracks` (N row labels)."""
    names, where = np.unique(np.asarray(tracks), return_inverse=True)
    rows_of = [np.flatnonzero(where == k) for k in range(len(names))]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        rows = np.concatenate([rows_of[k] for k in rng.integers(0, len(names), len(names))])
        draw = [metric(targets[rows], s[rows]) for s in scores]
        values.append(np.mean(draw))
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]  # a draw without both classes of a tag cannot be scored
    if not len(values):
        return [float("nan"), float("nan")]
    return [float(v) for v in np.percentile(values, [2.5, 97.5])]
