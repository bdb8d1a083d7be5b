"""The CQT cache: float16 log-CQTs in memory-mapped NumPy shards, indexed by SQLite.

Layout of a cache folder:

    index.sqlite            tables meta, shards, tracks, skipped
    shards/shard-000000.npy (frames, 84) float16; a track is a contiguous run of rows

Shards are time-major so that a crop is one contiguous read. A shard is written to a
temporary name, fsync'd, renamed, and only then are its tracks committed to the index:
a killed run never leaves a track in the index that points at a partial shard, and the
next run deletes temporaries and shards the index does not know.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
INDEX_NAME = "index.sqlite"
SHARD_DIR = "shards"

class CacheError(Exception):
    """A cache folder that is missing, from another format, or damaged."""


def connect_index(root: Path, readonly: bool) -> sqlite3.Connection:
    path = root / INDEX_NAME
    if readonly:
        if not path.is_file():
            raise CacheError(f"{root} is not an S3T cache: no {INDEX_NAME} (run `s3t prepare` first)")
        if path.with_name(INDEX_NAME + "-journal").exists():
            _roll_back_interrupted_commit(path)
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    return sqlite3.connect(path)


def _roll_back_interrupted_commit(path: Path) -> None:
    # A run killed inside a commit leaves a hot journal; only a writable connection may roll it
    # back, and a read-only one fails with "attempt to write a readonly database".
    try:
        db = sqlite3.connect(path)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchall()
        finally:
            db.close()
    except sqlite3.OperationalError as e:
        raise CacheError(f"{path} was left mid-commit by a killed run and cannot be repaired here ({e}); "
                         "run `s3t prepare` on it with write access") from e


class Cache:
    """Random access to a prepared cache without loading whole shards.

    Tracks are ordered by track id. Shards are memory-mapped lazily in each process, so a
    Cache can be handed to DataLoader workers or DDP ranks and read from all at once.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        db = connect_index(self.root, readonly=True)
        try:
            self.meta = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
            if self.meta.get("format_version") != FORMAT_VERSION:
                raise CacheError(f"{self.root}: cache format {self.meta.get('format_version')}, "
                                 f"this S3T reads format {FORMAT_VERSION}")
            self._shards = {row[0]: row[1:] for row in db.execute("SELECT id, file, frames, nbytes, crc32 FROM shards")}
            rows = db.execute("SELECT track_id, shard, offset, frames, duration FROM tracks ORDER BY track_id").fetchall()
            self.skipped = dict(db.execute("SELECT source, reason FROM skipped"))
        finally:
            db.close()
        self.track_ids = [r[0] for r in rows]
        self._pos = {t: i for i, t in enumerate(self.track_ids)}
        self.shard = np.array([r[1] for r in rows], dtype=np.int64)
        self.offset = np.array([r[2] for r in rows], dtype=np.int64)
        self.frames = np.array([r[3] for r in rows], dtype=np.int64)
        self.durations = np.array([r[4] for r in rows], dtype=np.float64)
        self._maps: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.track_ids)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_maps": {}}  # memory maps are reopened in each process

    def index_of(self, track_id: str) -> int:
        try:
            return self._pos[track_id]
        except KeyError:
            raise KeyError(f"track {track_id!r} is not in the cache {self.root}") from None

    def _map(self, shard: int) -> np.ndarray:
        if shard not in self._maps:
            file, frames, nbytes, _ = self._shards[shard]
            path = self.root / SHARD_DIR / file
            size = path.stat().st_size if path.exists() else -1
            if size != nbytes:
                raise CacheError(f"{path}: {size} bytes on disk, the index says {nbytes}: the shard is damaged "
                                 "(delete the cache and prepare again)")
            self._maps[shard] = np.load(path, mmap_mode="r")
        return self._maps[shard]

    def crop(self, i: int, start: int, length: int) -> np.ndarray:
        """Frames [start, start + length) of track i as a (84, length) float16 array."""
        if start < 0 or length < 0 or start + length > self.frames[i]:
            raise IndexError(f"crop [{start}, {start + length}) outside track {i} of {self.frames[i]} frames")
        base = self.offset[i]
        return self._map(int(self.shard[i]))[base + start : base + start + length].T

    def frames_at(self, i: int, positions: np.ndarray) -> np.ndarray:
        """Frames `positions` (ascending) of track i as an (84, len(positions)) float16 array: a read
        of those frames only, however long the track."""
        if len(positions) and (positions[0] < 0 or positions[-1] >= self.frames[i]):
            raise IndexError(f"frames {positions[0]}…{positions[-1]} outside track {i} of {self.frames[i]} frames")
        if len(positions) and positions[-1] - positions[0] + 1 == len(positions):  # a run: a view, no copy
            return self.crop(i, int(positions[0]), len(positions))
        return self._map(int(self.shard[i]))[self.offset[i] + positions].T

    def __getitem__(self, i: int) -> np.ndarray:
        """The whole track i as a (84, frames) float16 array (a view of the memory map)."""
        return self.crop(i, 0, int(self.frames[i]))

    def metadata(self, i: int) -> dict:
        """Source path, duration and the manifest's extra columns of track i."""
        db = connect_index(self.root, readonly=True)
        try:
            source, meta = db.execute("SELECT source, metadata FROM tracks WHERE track_id = ?",
                                      (self.track_ids[i],)).fetchone()
        finally:
            db.close()
        return {"track_id": self.track_ids[i], "source": source, "duration": float(self.durations[i]),
                **json.loads(meta)}

    def audio_span(self, i: int) -> tuple[str, float, float]:
        """(source file, start, length) in seconds of the audio behind item i: a clip's own span."""
        meta = self.metadata(i)
        return meta["source"], float(meta.get("start_s", 0.0)), float(self.frames[i] / self.meta["frame_rate"])

    def column(self, key: str) -> list:
        """One metadata column (e.g. 'label', 'split') for every track, in track order; None where absent."""
        db = connect_index(self.root, readonly=True)
        try:
            values = dict(db.execute("SELECT track_id, json_extract(metadata, ?) FROM tracks", (f"$.{key}",)))
        finally:
            db.close()
        return [values[t] for t in self.track_ids]

    def damaged_shards(self) -> dict[int, str]:
        """Shards whose size or CRC-32 disagrees with the index: {shard id: what is wrong}."""
        rows_per_read = 1 << 18  # ~44 MB at a time, whatever the shard size
        damaged = {}
        for shard, (file, _, _, crc) in self._shards.items():
            try:
                arr, value = self._map(shard), 0
            except (CacheError, ValueError, OSError) as e:
                damaged[shard] = str(e)
                continue
            for start in range(0, len(arr), rows_per_read):
                value = zlib.crc32(np.ascontiguousarray(arr[start : start + rows_per_read]).tobytes(), value)
            if value != crc:
                damaged[shard] = f"{self.root / SHARD_DIR / file}: checksum mismatch, the shard is damaged"
        return damaged

    def verify(self) -> None:
        """Raise CacheError when any shard is damaged, saying how to rebuild it."""
        damaged = self.damaged_shards()
        if damaged:
            raise CacheError(f"{len(damaged)} damaged shard(s), e.g. {next(iter(damaged.values()))}; "
                             "run `s3t prepare` again with the same input: it rebuilds them")


class Corpus:
    """Several caches read as one (`s3t pretrain --data A B …`, e.g. the parts of one manifest that
    `s3t prepare --part K/N` built on N machines): the items of each in turn, with the reading API of
    `Cache`. The caches must have been prepared alike (same meta)."""

    def __init__(self, caches: Sequence[Cache]):
        for c in caches[1:]:
            if c.meta != caches[0].meta:
                raise CacheError(f"{c.root} was prepared with {c.meta}, {caches[0].root} with {caches[0].meta}: "
                                 "caches read as one corpus must be prepared alike")
        self.parts, self.meta = list(caches), caches[0].meta
        self.root = Path(caches[0].root)  # where messages point first
        self.track_ids = [t for c in caches for t in c.track_ids]
        self.frames = np.concatenate([c.frames for c in caches])
        self.durations = np.concatenate([c.durations for c in caches])
        self._part = np.repeat(np.arange(len(caches)), [len(c) for c in caches])
        self._local = np.concatenate([np.arange(len(c)) for c in caches])
        self.skipped = {k: v for c in caches for k, v in c.skipped.items()}

    def __len__(self) -> int:
        return len(self.track_ids)

    def _at(self, i: int) -> tuple[Cache, int]:
        return self.parts[self._part[i]], int(self._local[i])

    def crop(self, i: int, start: int, length: int) -> np.ndarray:
        cache, j = self._at(i)
        return cache.crop(j, start, length)

    def frames_at(self, i: int, positions: np.ndarray) -> np.ndarray:
        cache, j = self._at(i)
        return cache.frames_at(j, positions)

    def __getitem__(self, i: int) -> np.ndarray:
        cache, j = self._at(i)
        return cache[j]

    def metadata(self, i: int) -> dict:
        cache, j = self._at(i)
        return cache.metadata(j)

    def audio_span(self, i: int) -> tuple[str, float, float]:
        cache, j = self._at(i)
        return cache.audio_span(j)

    def column(self, key: str) -> list:
        return [v for c in self.parts for v in c.column(key)]

    def verify(self) -> None:
        for c in self.parts:
            c.verify()


def open_cache(root: str | Path) -> Cache:
    """Open a cache folder written by `s3t prepare` for reading."""
    return Cache(root)


def open_corpus(roots: str | Path | Sequence[str | Path]) -> Cache | Corpus:
    """One cache folder, or several read as one corpus."""
    if isinstance(roots, (str, Path)):
        return Cache(roots)
    caches = [Cache(r) for r in roots]
    return caches[0] if len(caches) == 1 else Corpus(caches)


def track_names(cache: Cache | Corpus) -> list[str]:
    """The track each entry comes from: its own id in a cache of whole tracks, the source track of a
    clip in a cache of clips (`prepare --clip-seconds`)."""
    names = cache.column("track") if cache.meta.get("clip_seconds") else cache.track_ids
    return [name or tid for name, tid in zip(names, cache.track_ids)]
