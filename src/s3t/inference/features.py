"""Running a frozen encoder: features of clips, caches, files or waves, and the resumable feature
store `s3t embed` writes."""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import zipfile
import zlib
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from s3t.audio.decode import load_audio
from s3t.data.cache import INDEX_NAME, Cache, open_cache
from s3t.data.preparation import PrepareSummary, prepare
from s3t.inference.encoders import Encoder, WaveEncoder
from s3t.inference.frames import embed_frames_to_file
from s3t.io.files import atomic_write, create_memmap, write_json

log = logging.getLogger(__name__)


def embed_clips(encoder: Encoder, clips: Iterable[np.ndarray | torch.Tensor], windows: bool | None,
                batch_size: int) -> Iterable[np.ndarray]:
    """Yield one (D,) feature per clip the encoder takes ((84, T) log-CQTs, or waves), running it on
    batches of crops."""
    pending: list[torch.Tensor] = []  # crops waiting for a batch
    counts: list[int] = []  # crops per clip, in order
    done: list[torch.Tensor] = []  # features of the crops encoded so far

    def flush() -> None:  # crops of one width at a time (model.short=native keeps short clips' own)
        for _, same in itertools.groupby(pending, key=lambda crops: crops.shape[-1]):
            done.extend(encoder(torch.cat(list(same))).float().cpu())
        pending.clear()

    for clip in clips:
        crops = encoder.inputs_of(clip, windows)
        pending.append(crops)
        counts.append(len(crops))
        if sum(len(p) for p in pending) >= batch_size:
            flush()
        while counts and len(done) >= counts[0]:
            n = counts.pop(0)
            yield torch.stack(done[:n]).mean(0).numpy()
            del done[:n]
    flush()
    for n in counts:
        yield torch.stack(done[:n]).mean(0).numpy()
        del done[:n]


def extract_features(cache: Cache, encoder: Encoder, indices: Sequence[int] | None = None, windows: bool | None = None,
                     batch_size: int = 32, progress: bool = True) -> np.ndarray:
    """Features (N, D) float32 of the cache's tracks `indices` (all by default), in that order."""
    if not isinstance(encoder, WaveEncoder):
        _check_compression(cache, encoder)
    indices = range(len(cache)) if indices is None else indices
    clips = (encoder.clip_of_cache(cache, i) for i in tqdm(indices, desc="embed", unit="clip", disable=not progress))
    return np.stack(list(embed_clips(encoder, clips, windows, batch_size))) if len(indices) else \
        np.zeros((0, encoder.num_features), np.float32)


def _check_compression(cache: Cache, encoder: Encoder) -> None:
    c = int(cache.meta.get("time_compression", 1))
    if c != encoder.time_compression:
        raise ValueError(f"{cache.root} was prepared with --time-compression {c}, but the encoder was trained "
                         f"on {encoder.time_compression}; prepare the data again with "
                         f"--time-compression {encoder.time_compression}")


def embed(inputs: Sequence[str | Path | np.ndarray], encoder: Encoder, windows: bool | None = None,
          batch_size: int = 32) -> np.ndarray:
    """Features (N, D) of audio files (paths) or mono 22,050 Hz waves (1-D arrays)."""
    def clips():
        for item in inputs:
            yield encoder.clip_of_wave(item if isinstance(item, np.ndarray) else load_audio(item))

    return np.stack(list(embed_clips(encoder, clips(), windows, batch_size)))


def embed_cache_to_file(cache: Cache, encoder: Encoder, out: str | Path, windows: bool | None = None,
                        batch_size: int = 32, chunk: int = 256, progress: bool = True) -> Path:
    """Write every track's feature to `out` (.npz: track_ids, features, encoder), resumably.

    Work in progress lives in `out`.partial/: a memory-mapped (N, D) features.npy filled chunk by
    chunk and progress.json saying how many rows are final, so memory stays flat, each chunk is
    written once, and a killed run redoes at most one chunk.
    """
    cache.verify()
    out = Path(out)
    work = out.with_name(out.name + ".partial")
    n, dim = len(cache), encoder.num_features
    if n == 0:
        _save_npz(out, track_ids=np.array([], dtype=str), features=np.zeros((0, dim), np.float32),
                  encoder=encoder.fingerprint())
        return out
    key = {"encoder": encoder.fingerprint(), "tracks": zlib.crc32("\n".join(cache.track_ids).encode()),
           "n": n, "dim": dim}
    state = _read_progress(work)
    if state is None or {k: state.get(k) for k in key} != key:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        create_memmap(work / "features.npy", (n, dim)).flush()
        state = {**key, "done": 0}
        _write_progress(work, state)
    elif state["done"]:
        log.info("resuming %s: %d of %d tracks done", out, state["done"], n)
    feats = np.load(work / "features.npy", mmap_mode="r+")
    bar = tqdm(total=n, initial=state["done"], desc="embed", unit="clip", disable=not progress)
    for start in range(state["done"], n, chunk):
        part = list(range(start, min(n, start + chunk)))
        feats[start : start + len(part)] = extract_features(cache, encoder, part, windows, batch_size, progress=False)
        feats.flush()
        _write_progress(work, {**key, "done": start + len(part)})
        bar.update(len(part))
    bar.close()
    _save_npz(out, track_ids=np.array(cache.track_ids), features=feats, encoder=key["encoder"])
    shutil.rmtree(work)
    return out


def embed_to_file(source: str | Path, encoder: Encoder, out: str | Path, windows: bool | None = None,
                  batch_size: int = 32, save_every: int = 256, workers: int = 2, device: str = "cpu",
                  progress: bool = True, frames: bool = False) -> tuple[Path, PrepareSummary | None]:
    """`s3t embed`: the features of every track of `source` (a prepared cache, or a folder or manifest of
    audio, prepared into OUT.cache/ first, as the encoder's input expects) in the store `out`; with
    `frames`, one feature per hop of each track (`embed_frames_to_file`). Returns the store and the
    preparation's summary (None for a cache)."""
    source, out = Path(source), Path(out)
    summary = None
    if not (source / INDEX_NAME).exists():
        cache_dir = out.with_name(out.name + ".cache")
        summary = prepare(source, cache_dir, workers=workers, time_compression=encoder.time_compression,
                          device=device, progress=progress)
        source = cache_dir
    if frames:
        cache = open_cache(source)
        _check_compression(cache, encoder)
        return embed_frames_to_file(cache, encoder, out, batch_size=batch_size, progress=progress), summary
    path = embed_cache_to_file(open_cache(source), encoder, out, windows=windows, batch_size=batch_size,
                               chunk=save_every, progress=progress)
    return path, summary


def _read_progress(work: Path) -> dict | None:
    try:
        return json.loads((work / "progress.json").read_text())
    except (OSError, ValueError):
        return None


def _write_progress(work: Path, state: dict) -> None:
    write_json(work / "progress.json", state)


def read_features(path: str | Path) -> dict[str, np.ndarray] | None:
    """The arrays of a features file, or None (with a warning) when it is damaged."""
    try:
        with np.load(path) as f:
            arrays = {k: f[k] for k in ("track_ids", "features", "encoder")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        log.warning("%s is damaged (%s: %s); computing it again", path, type(e).__name__, e)
        return None
    if arrays["features"].ndim != 2 or len(arrays["features"]) != len(arrays["track_ids"]):
        log.warning("%s holds %s features for %d tracks; computing it again", path, arrays["features"].shape,
                    len(arrays["track_ids"]))
        return None
    return arrays


def _save_npz(path: Path, **arrays) -> None:
    with atomic_write(path) as tmp:
        np.savez(tmp, **arrays)
