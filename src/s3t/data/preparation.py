"""`s3t prepare`: decode a corpus once into the CQT cache, in parallel and resumably."""

from __future__ import annotations

import contextlib
import csv
import logging
import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from s3t.audio.constant_q import (
    BINS_PER_OCTAVE,
    FLOOR_DB,
    FMIN,
    HOP_LENGTH,
    N_BINS,
    log_cqt_batch,
    log_cqt_frames,
)
from s3t.audio.decode import AUDIO_EXTENSIONS, SAMPLE_RATE, AudioError, load_audio
from s3t.data.cache_writer import CacheWriter, Track
from s3t.devices import resolve_device
from s3t.io.files import write_json

log = logging.getLogger(__name__)


class InputError(Exception):
    """An input folder or manifest that cannot be used; the message says the expected form."""


@dataclass(frozen=True)
class Source:
    track_id: str
    path: str
    metadata: dict = field(default_factory=dict)


@dataclass
class PrepareSummary:
    written: int = 0
    already_done: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # source path -> reason
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0

    def __str__(self) -> str:
        lines = [f"tracks written: {self.written} ({self.audio_seconds / 3600:.2f} h of audio) "
                 f"in {self.wall_seconds:.1f} s; already in the cache: {self.already_done}; "
                 f"skipped: {len(self.skipped)}"]
        lines += [f"  skipped {path}: {reason}" for path, reason in sorted(self.skipped.items())]
        return "\n".join(lines)


def share(sources: list[Source], k: int, n: int) -> list[Source]:
    """The K-th of N interleaved shares of `sources` (1 ≤ K ≤ N)."""
    if not 1 <= k <= n:
        raise ValueError(f"part {k}/{n}: expected K/N with 1 <= K <= N")
    return sources[k - 1 :: n]


def list_sources(input_path: str | Path) -> list[Source]:
    """Audio files of a folder (recursive, sorted) or the rows of a CSV manifest.

    A manifest needs a `path` column (relative paths are read from the manifest's folder);
    its other columns are kept as metadata. Track ids are paths relative to the folder, or
    the manifest's `path` values as written.
    """
    root = Path(input_path)
    if root.is_dir():
        return _list_folder(root)
    if root.is_file() and root.suffix.lower() == ".csv":
        return _list_manifest(root)
    raise InputError(f"{root}: expected a folder of audio files or a CSV manifest with a 'path' column")


def _list_folder(root: Path) -> list[Source]:
    sources = []
    for folder, dirs, files in os.walk(root):  # does not follow symlinked folders: no loops
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(AUDIO_EXTENSIONS):
                path = Path(folder) / name
                sources.append(Source(path.relative_to(root).as_posix(), str(path)))
    if not sources:
        raise InputError(f"{root}: no audio files found (looked recursively for {', '.join(AUDIO_EXTENSIONS)})")
    return sources


def _list_manifest(manifest: Path) -> list[Source]:
    with open(manifest, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "path" not in reader.fieldnames:
            raise InputError(f"{manifest}: a manifest needs a header with a 'path' column, "
                             f"e.g. 'path,label,split'; found {reader.fieldnames}")
        sources = []
        for line, row in enumerate(reader, start=2):
            value = (row.pop("path") or "").strip()
            if not value:
                raise InputError(f"{manifest}:{line}: empty 'path'")
            path = Path(value) if os.path.isabs(value) else manifest.parent / value
            sources.append(Source(value, str(path), {k: v for k, v in row.items() if k is not None}))
    if not sources:
        raise InputError(f"{manifest}: the manifest lists no files")
    if len({s.track_id for s in sources}) != len(sources):
        raise InputError(f"{manifest}: a path is listed twice; each track must appear once")
    return sources


def _file_size(source: Source) -> int:
    try:
        return os.path.getsize(source.path)
    except OSError:
        return 0  # unreadable: the worker reports why


GPU_BATCH_SAMPLES = 2**26  # samples per CQT call on a GPU: ~50 min of audio, 0.27 GB as float32


def _worker_context() -> mp.context.BaseContext:
    """Fork where it exists: workers inherit the imported torch instead of spending ~2 s each
    importing it again. This is DataLoader's default on Linux, and safe for the same reason:
    each worker runs torch on one thread, and CUDA is only ever used in this process."""
    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


def _init_worker() -> None:
    torch.set_num_threads(1)  # parallelism comes from the worker processes


def _work(task: tuple[Source, int, bool]):
    """Decode (and, when `analyse`, transform) one source; never raises."""
    source, time_compression, analyse = task
    try:
        wave = load_audio(source.path)
        if len(wave) < HOP_LENGTH:
            raise AudioError(source.path, f"too short: {len(wave)} samples, less than one hop "
                                                f"({HOP_LENGTH} samples at {SAMPLE_RATE} Hz)")
        duration = len(wave) / SAMPLE_RATE
        payload = log_cqt_frames(wave, time_compression) if analyse else wave
        return source, payload, duration, None
    except AudioError as e:
        return source, None, 0.0, e.reason
    except Exception as e:  # one bad file must never stop a run over many good ones
        return source, None, 0.0, f"unexpected {type(e).__name__}: {e}"


def split_clips(source: Source, spec: np.ndarray, duration: float, clip_frames: int,
                frame_rate: float) -> list[Track]:
    """One cache entry per whole clip of `clip_frames` frames (the remainder is dropped; a track
    shorter than one clip stays whole), or the whole track when clip_frames is 0."""
    if not clip_frames:
        return [Track(source.track_id, source.path, spec, duration, source.metadata)]
    return [Track(f"{source.track_id}#{k:04d}", source.path, spec[k * clip_frames : (k + 1) * clip_frames],
                  min(duration, clip_frames / frame_rate),
                  {**source.metadata, "track": source.track_id, "clip": k, "start_s": k * clip_frames / frame_rate})
            for k in range(max(1, len(spec) // clip_frames))]


def cache_meta(time_compression: int, clip_seconds: float = 0.0) -> dict:
    """How a cache's CQTs were computed; stored in its index and checked on resume."""
    return {"sample_rate": SAMPLE_RATE, "hop_length": HOP_LENGTH, "n_bins": N_BINS,
            "bins_per_octave": BINS_PER_OCTAVE, "fmin": FMIN, "floor_db": FLOOR_DB,
            "time_compression": time_compression, "clip_seconds": clip_seconds,
            "frame_rate": SAMPLE_RATE / HOP_LENGTH / time_compression}


def prepare(
    input_path: str | Path,
    out: str | Path,
    workers: int = 2,
    time_compression: int = 1,
    clip_seconds: float = 0.0,
    device: str = "cpu",
    shard_mb: float = 128.0,
    progress: bool = True,
    part: tuple[int, int] = (1, 1),
) -> PrepareSummary:
    """Write the log-CQT of every source under `input_path` into the cache at `out`.

    With `clip_seconds`, each track is cut after analysis into clips of that length (ids
    `TRACK#0000`, …; metadata `track`, `clip`, `start_s`), so the split stays by track.
    Resumable: tracks already in the cache are skipped. Unreadable files are skipped with
    one warning each and listed in the summary. `workers=0` runs in this process. With a
    CUDA `device`, workers only decode and the CQT runs on the GPU in this process.
    `part=(K, N)` prepares only the K-th of N interleaved shares of the sources (every N-th, from
    the K-th, in listing order), so that N machines each build one cache of one manifest.
    """
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    device = str(resolve_device(device))
    start = time.perf_counter()
    sources = share(list_sources(input_path), *part)
    if clip_seconds < 0:
        raise ValueError(f"clip_seconds must be >= 0, got {clip_seconds}")
    meta = cache_meta(time_compression, clip_seconds)
    clip_frames = round(clip_seconds * meta["frame_rate"])
    writer = CacheWriter(out, meta, shard_mb=shard_mb)
    summary = PrepareSummary()
    try:
        done = writer.done_sources()
        # largest files first, so that no worker is left alone on a long track at the end
        todo = sorted((s for s in sources if s.path not in done), key=_file_size, reverse=True)
        summary.already_done = len(sources) - len(todo)
        _write_all(writer, summary, todo, workers, time_compression, device, clip_frames, meta, progress)
    finally:
        writer.close()
    summary.wall_seconds = time.perf_counter() - start
    _save_summary(Path(out), summary)
    return summary


def _write_all(writer: CacheWriter, summary: PrepareSummary, todo: list[Source], workers: int, time_compression: int,
               device: str, clip_frames: int, meta: dict, progress: bool) -> None:
    """Decode every source in `workers` processes and write it; on the CPU the workers also analyse,
    on a GPU the decoded waves wait for one batched CQT on the device."""
    analyse_in_worker = device == "cpu"
    waiting: list[tuple[Source, np.ndarray, float]] = []  # decoded, for the next batch on the device
    tasks = ((s, time_compression, analyse_in_worker) for s in todo)
    pool = _worker_context().Pool(workers, initializer=_init_worker) if workers else None
    bar = tqdm(total=len(todo), unit="track", disable=not progress, desc="prepare")
    with pool or contextlib.nullcontext(), logging_redirect_tqdm(), bar:
        for source, payload, duration, error in pool.imap_unordered(_work, tasks) if pool else map(_work, tasks):
            bar.update()
            if error is not None:
                log.warning("skipped %s: %s", source.path, error)
                summary.skipped[source.path] = error
                writer.skip(source.track_id, source.path, error)
                continue
            if analyse_in_worker:
                _add(writer, summary, [(source, payload, duration)], clip_frames, meta["frame_rate"])
                continue
            waiting.append((source, payload, duration))
            if sum(len(w) for _, w, _ in waiting) >= GPU_BATCH_SAMPLES:
                _add_on_device(writer, summary, waiting, time_compression, device, clip_frames, meta)
            bar.set_postfix(hours=f"{summary.audio_seconds / 3600:.2f}")
        if waiting:
            _add_on_device(writer, summary, waiting, time_compression, device, clip_frames, meta)


def _add_on_device(writer: CacheWriter, summary: PrepareSummary, waiting: list, time_compression: int, device: str,
                   clip_frames: int, meta: dict) -> None:
    """Analyse the waiting tracks in one batch on the device, write them, and empty the list."""
    specs = log_cqt_batch([w for _, w, _ in waiting], time_compression, device)
    _add(writer, summary, [(s, spec, d) for (s, _, d), spec in zip(waiting, specs)], clip_frames, meta["frame_rate"])
    waiting.clear()


def _add(writer: CacheWriter, summary: PrepareSummary, done: list, clip_frames: int, frame_rate: float) -> None:
    for source, spec, duration in done:
        writer.add(*split_clips(source, spec, duration, clip_frames, frame_rate))
        summary.written += 1
        summary.audio_seconds += duration


def _save_summary(out: Path, summary: PrepareSummary) -> None:
    record = {"written": summary.written, "already_done": summary.already_done, "skipped": summary.skipped,
              "audio_hours": summary.audio_seconds / 3600, "wall_seconds": summary.wall_seconds}
    write_json(out / "last_prepare.json", record, indent=2)
