"""A labeled set prepared for probing, supervised training or monitoring.

`LabeledCache.prepare` gives the set a validation split (if it has none), writes its manifest,
prepares its audio into a cache, and lists each split's cached items (or clips) as rows of
(cache id, track path); `targets`, `train_subset` and `indices` turn rows into what a probe or a
training loop needs. `linear-eval`, `supervised`, `reproduce` (through them) and `--monitor` all
go through it, and read what a dataset needs from its own properties (`LabeledSet`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from s3t.data.cache import Cache, open_cache, track_names
from s3t.data.labeled_set import SPLITS, LabeledSet, with_validation
from s3t.data.preparation import PrepareSummary, prepare

Rows = list[tuple[str, str]]  # (cache id, track path) of cached items or clips


def write_manifest(dataset: LabeledSet, path: Path) -> None:
    """The dataset's items as a manifest CSV (path, label, split): what `prepare` reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split"])
        writer.writerows([item.path, ";".join(item.labels), item.split] for item in dataset.items)


@dataclass
class LabeledCache:
    dataset: LabeledSet
    cache: Cache
    rows: dict[str, Rows]  # per split
    clips: bool  # rows are clips of tracks (scored per clip and per track)
    summary: PrepareSummary

    @classmethod
    def prepare(cls, dataset: LabeledSet, out: Path, cache_dir: str | Path | None = None, time_compression: int = 1,
                clip_seconds: float = 0.0, workers: int = 2, progress: bool = True, device: str = "cpu"
                ) -> LabeledCache:
        """The dataset with a validation split, its manifest in `out`, and its audio prepared into
        `cache_dir` (default `out`/cache; the CQT on `device`), damaged shards rebuilt; raises when a
        split has no readable item."""
        dataset = with_validation(dataset)
        cache_dir = Path(cache_dir) if cache_dir else Path(out) / "cache"
        write_manifest(dataset, Path(out) / "manifest.csv")
        summary = prepare(Path(out) / "manifest.csv", cache_dir, workers=workers, time_compression=time_compression,
                          clip_seconds=clip_seconds, progress=progress, device=device)
        cache = open_cache(cache_dir)
        if cache.meta.get("clip_seconds", 0.0) != clip_seconds:
            raise ValueError(f"{cache_dir} holds clips of {cache.meta.get('clip_seconds')} s, not {clip_seconds} s: "
                             "give another --cache folder")
        return cls(dataset, cache, _split_rows(dataset, cache), clip_seconds > 0, summary)

    def targets(self, rows: Rows) -> np.ndarray:
        """Class ids (N,) or multi-hot tags (N, C) of the rows' tracks."""
        return targets_of(self.dataset, [self._items[track] for _, track in rows])

    def train_subset(self, fraction: float, seed: int) -> Rows:
        """The train rows of a `fraction` of the training tracks (`label_subset`)."""
        keep = label_subset(self.dataset, sorted({t for _, t in self.rows["train"]}), fraction, seed)
        return [r for r in self.rows["train"] if r[1] in keep]

    def indices(self, rows: Rows) -> list[int]:
        """The rows' positions in the cache."""
        return [self.cache.index_of(cid) for cid, _ in rows]

    @property
    def _items(self) -> dict:
        return {item.path: item for item in self.dataset.items}


def _split_rows(dataset: LabeledSet, cache: Cache) -> dict[str, Rows]:
    by_path = {item.path: item for item in dataset.items}
    entries = [(cid, track) for cid, track in zip(cache.track_ids, track_names(cache)) if track in by_path]
    rows = {s: [(cid, track) for cid, track in entries if by_path[track].split == s] for s in SPLITS}
    for s, r in rows.items():
        if not r:
            raise ValueError(f"{dataset.name}: no readable {s} items (of {len(dataset.split(s))} listed); "
                             "see the skipped files above")
    return rows


def targets_of(dataset: LabeledSet, items: list) -> np.ndarray:
    """Class ids (N,) or multi-hot tags (N, C) of items."""
    index = {c: i for i, c in enumerate(dataset.classes)}
    if not dataset.multilabel:
        return np.array([index[item.labels[0]] for item in items], dtype=np.int64)
    targets = np.zeros((len(items), len(dataset.classes)), dtype=np.float32)
    for n, item in enumerate(items):
        targets[n, [index[t] for t in item.labels if t in index]] = 1.0
    return targets


def label_subset(dataset: LabeledSet, train_tracks: list[str], fraction: float, seed: int) -> set[str]:
    """A `fraction` of the training tracks drawn with `seed`, stratified by label (at least one
    track per class for single-label data), so 1 % of GTZAN still sees every genre."""
    if fraction >= 1.0:
        return set(train_tracks)
    labels = {item.path: ";".join(item.labels) for item in dataset.items}
    rng = np.random.default_rng(seed)
    if dataset.multilabel:
        n = max(1, round(fraction * len(train_tracks)))
        return set(rng.choice(sorted(train_tracks), size=n, replace=False).tolist())
    chosen: set[str] = set()
    for label in sorted({labels[t] for t in train_tracks}):
        members = sorted(t for t in train_tracks if labels[t] == label)
        n = max(1, round(fraction * len(members)))
        chosen |= set(rng.choice(members, size=n, replace=False).tolist())
    return chosen
