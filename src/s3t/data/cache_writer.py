"""Writing the CQT cache (`s3t.data.cache` has its layout): tracks are appended one atomically
committed shard at a time."""

from __future__ import annotations

import json
import logging
import sqlite3
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from s3t.data.cache import (
    FORMAT_VERSION,
    INDEX_NAME,
    SHARD_DIR,
    Cache,
    CacheError,
    connect_index,
)
from s3t.io.files import StorageError, atomic_write

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shards (
    id INTEGER PRIMARY KEY, file TEXT NOT NULL, frames INTEGER NOT NULL,
    nbytes INTEGER NOT NULL, crc32 INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tracks (
    track_id TEXT PRIMARY KEY, source TEXT NOT NULL, shard INTEGER NOT NULL REFERENCES shards(id),
    offset INTEGER NOT NULL, frames INTEGER NOT NULL, duration REAL NOT NULL, metadata TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS skipped (track_id TEXT PRIMARY KEY, source TEXT NOT NULL, reason TEXT NOT NULL);
"""



@dataclass
class Track:
    """One analysed track, ready to be written: `spec` is (frames, 84) float16."""

    track_id: str
    source: str
    spec: np.ndarray
    duration: float
    metadata: dict


class CacheWriter:
    """Appends tracks to a cache, one atomically committed shard at a time.

    `meta` describes how the CQTs were made; reopening a cache with different meta is an
    error (mixing time compressions in one cache would silently corrupt training).
    """

    def __init__(self, root: str | Path, meta: dict, shard_mb: float = 128.0):
        self.root = Path(root)
        (self.root / SHARD_DIR).mkdir(parents=True, exist_ok=True)
        self.db = connect_index(self.root, readonly=False)
        self.db.executescript(_SCHEMA)
        self._check_meta({"format_version": FORMAT_VERSION, **meta})
        self.shard_bytes = int(shard_mb * 2**20)
        self._pending: list[Track] = []
        self._pending_bytes = 0
        self._remove_orphans()
        self._drop_damaged_shards()

    def _check_meta(self, meta: dict) -> None:
        stored = {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}
        if stored and stored != meta:  # compared as values: clip_seconds 30 is 30.0
            diff = {k: (stored.get(k), meta.get(k)) for k in meta if stored.get(k) != meta[k]}
            raise CacheError(f"{self.root} was prepared with other settings (stored, requested): {diff}")
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", ((k, json.dumps(v)) for k, v in meta.items()))

    def _remove_orphans(self) -> None:
        known = {row[0] for row in self.db.execute("SELECT file FROM shards")}
        for path in (self.root / SHARD_DIR).iterdir():
            if path.name not in known:
                log.info("removing %s left by an interrupted run", path)
                path.unlink()

    def _drop_damaged_shards(self) -> None:
        """Forget shards that fail their checksum, so that their tracks are prepared again."""
        if not self.db.execute("SELECT 1 FROM shards LIMIT 1").fetchone():
            return
        for shard, reason in Cache(self.root).damaged_shards().items():
            log.warning("%s; its tracks will be prepared again", reason)
            file = self.db.execute("SELECT file FROM shards WHERE id = ?", (shard,)).fetchone()[0]
            with self.db:
                self.db.execute("DELETE FROM tracks WHERE shard = ?", (shard,))
                self.db.execute("DELETE FROM shards WHERE id = ?", (shard,))
            (self.root / SHARD_DIR / file).unlink(missing_ok=True)

    def done_sources(self) -> set[str]:
        """Source files already in the cache (all of their clips, since clips are added together)."""
        return {row[0] for row in self.db.execute("SELECT DISTINCT source FROM tracks")}

    def add(self, *tracks: Track) -> None:
        """Queue tracks (the clips of one file together: they land in the same shard)."""
        self._pending.extend(tracks)
        self._pending_bytes += sum(t.spec.nbytes for t in tracks)
        if self._pending_bytes >= self.shard_bytes:
            self.flush()

    def skip(self, track_id: str, source: str, reason: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO skipped VALUES (?, ?, ?)", (track_id, source, reason))

    def flush(self) -> None:
        """Write pending tracks as one shard, then commit them to the index."""
        if not self._pending:
            return
        shard_id = self.db.execute("SELECT COALESCE(MAX(id) + 1, 0) FROM shards").fetchone()[0]
        name = f"shard-{shard_id:06d}.npy"
        frames, nbytes, crc = _write_shard(self.root / SHARD_DIR / name, [t.spec for t in self._pending])
        rows, offset = [], 0
        for t in self._pending:
            rows.append((t.track_id, t.source, shard_id, offset, len(t.spec), t.duration, json.dumps(t.metadata)))
            offset += len(t.spec)
        try:
            with self.db:  # one transaction: the shard and all its tracks, or nothing
                self.db.execute("INSERT INTO shards VALUES (?, ?, ?, ?, ?)", (shard_id, name, frames, nbytes, crc))
                self.db.executemany("INSERT OR REPLACE INTO tracks VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                self.db.executemany("DELETE FROM skipped WHERE track_id = ?", [(r[0],) for r in rows])
        except sqlite3.OperationalError as e:
            if "full" in str(e):  # the uncommitted shard is an orphan, removed by the next run
                raise StorageError(f"cannot write {self.root / INDEX_NAME}: {e}. Files written before are intact; "
                                   f"free some space and run the same command again to continue") from None
            raise
        self._pending, self._pending_bytes = [], 0

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.db.close()


def _write_shard(path: Path, specs: list[np.ndarray]) -> tuple[int, int, int]:
    """Write specs as one (frames, 84) .npy atomically; return (frames, bytes, crc32)."""
    frames = sum(len(s) for s in specs)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)),
              "fortran_order": False, "shape": (frames, specs[0].shape[1])}
    crc = 0
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for s in specs:
            data = np.ascontiguousarray(s, dtype=np.float16).tobytes()
            crc = zlib.crc32(data, crc)
            f.write(data)
    return frames, path.stat().st_size, crc
