"""Frame-level embeddings of audio of any length: one feature per hop, each the encoder's reading of
the window of its input length centred on that hop (the CQT floor beyond the ends), computed chunk by
chunk so that memory follows the chunk, not the audio.

A chunk's CQT comes from just the samples its frames see: the CQT's kernels reach at most half their
width (16 frames) either side, so frames cut from a segment with that margin equal the full pass's.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm

from s3t.audio.constant_q import (FLOOR_DB, HOP_LENGTH, N_BINS, amplitude_to_db, compress_time, cqt,
                                  kernel_reach, n_frames)
from s3t.audio.decode import SAMPLE_RATE
from s3t.data.cache import Cache
from s3t.inference.encoders import Encoder
from s3t.io.files import atomic_write

MAX_HOP_MS = 50.0  # HEAR's ceiling for event and transcription tasks


def frame_seconds(encoder: Encoder) -> float:
    """Seconds between two CQT frames as the encoder reads them."""
    return encoder.time_compression * HOP_LENGTH / SAMPLE_RATE


def default_hop(encoder: Encoder) -> int:
    """The largest hop, in frames, of at most MAX_HOP_MS: 2 frames (46.4 ms) for an uncompressed CQT."""
    return max(1, int(MAX_HOP_MS / 1000 / frame_seconds(encoder)))


def log_cqt_span(wave: np.ndarray | torch.Tensor, start: int, stop: int, compression: int = 1) -> torch.Tensor:
    """Frames [start, stop) of the (84, T) float32 log-CQT of the whole `wave`, from the samples they see."""
    c, margin = compression, kernel_reach()
    first, last = start * c - margin, stop * c + margin  # raw frames, margin included
    x = torch.zeros((last - first - 1) * HOP_LENGTH + 1)
    wave = torch.as_tensor(np.asarray(wave, np.float32))
    lo, hi = max(0, first * HOP_LENGTH), min(len(wave), (last - 1) * HOP_LENGTH + 1)
    if hi > lo:
        x[lo - first * HOP_LENGTH : hi - first * HOP_LENGTH] = wave[lo:hi]
    mag = cqt(x, log=False)[0, :, margin : margin + (stop - start) * c]  # the frames with full support
    mag = mag[:, : max(0, n_frames(len(wave)) - start * c)]  # the full pass stops at the wave's last frame
    return amplitude_to_db(compress_time(mag, c))


def n_frames_of(encoder: Encoder, n_samples: int) -> int:
    """Frames of the encoder's CQT for `n_samples` samples (its time compression's last window kept)."""
    return -(-n_frames(n_samples) // encoder.time_compression)


def frame_embeddings(wave: np.ndarray | torch.Tensor, encoder: Encoder, hop: int | None = None, chunk: int = 2048,
                     batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps (K,) in seconds, features (K, D) float32) of a mono 22,050 Hz wave: one every `hop`
    frames (default `default_hop`), from 0 to the last hop at or before the end, the hops of `chunk` frames
    at a time (47.6 s): a chunk's CQT also reads the window either side, so long chunks compute few frames
    twice; memory holds a chunk's CQT (84 × 2,816 floats for `cpu-small`) and one batch of windows."""
    def span(lo: int, hi: int) -> torch.Tensor:
        return log_cqt_span(wave, lo, hi, encoder.time_compression)

    return _frames(span, n_frames_of(encoder, len(wave)), len(wave) / SAMPLE_RATE, encoder, hop, chunk, batch_size)


def cqt_frame_embeddings(cqt: np.ndarray | torch.Tensor, encoder: Encoder, hop: int | None = None, chunk: int = 2048,
                         batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """`frame_embeddings` of a prepared (84, T) log-CQT (a cache's item, memory-mapped: read a chunk at a time)."""
    def span(lo: int, hi: int) -> torch.Tensor:
        return torch.as_tensor(np.asarray(cqt[:, lo:hi], np.float32))

    T = cqt.shape[-1]
    return _frames(span, T, (T - 1) * frame_seconds(encoder), encoder, hop, chunk, batch_size)


def _frames(span, T: int, seconds: float, encoder: Encoder, hop: int | None, chunk: int,
            batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    if getattr(encoder.backbone, "input_kind", "") == "wave":
        raise ValueError("frame embeddings read a spectrogram window per hop; a waveform encoder (CLMR's) has none")
    hop = hop or default_hop(encoder)
    centres = np.arange(0, T, hop)
    centres = centres[centres * frame_seconds(encoder) <= seconds + 1e-9]
    feats = np.zeros((len(centres), encoder.num_features), np.float32)
    per_chunk = max(1, chunk // hop)  # hops: a chunk spans the same audio whatever the hop
    for i in range(0, len(centres), per_chunk):
        part = centres[i : i + per_chunk]
        feats[i : i + len(part)] = np.concatenate(list(_encode_windows(span, T, encoder, part, batch_size)))
    return centres * frame_seconds(encoder), feats


def _encode_windows(span, T: int, encoder: Encoder, centres: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Features of the windows of `encoder.frames` frames centred on `centres` (consecutive hops);
    `span(lo, hi)` gives frames [lo, hi) of the T-frame log-CQT."""
    F = encoder.frames
    start, stop = int(centres[0]) - F // 2, int(centres[-1]) - F // 2 + F
    frames = torch.full((N_BINS, stop - start), FLOOR_DB)  # the floor past either end of the audio
    lo, hi = max(0, start), min(T, stop)
    if hi > lo:
        frames[:, lo - start : hi - start] = span(lo, hi)
    offsets = centres - centres[0]
    for b in range(0, len(offsets), batch_size):
        crops = [encoder.inputs_of(frames[:, o : o + F], windows=False) for o in offsets[b : b + batch_size]]
        yield encoder(torch.cat(crops)).float().cpu().numpy()


def embed_frames_to_file(cache: Cache, encoder: Encoder, out: str | Path, hop: int | None = None,
                         batch_size: int = 32, progress: bool = True) -> Path:
    """`s3t embed --frames`: every track's frame embeddings in the .npz `out` — track_ids, hop_seconds,
    encoder, and per track i `timestamps_i` (K,) seconds and `features_i` (K, D) — written one track at a
    time into the archive, so memory holds one track's frames at most."""
    out = Path(out)
    hop = hop or default_hop(encoder)
    with atomic_write(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        _add(archive, "track_ids", np.array(cache.track_ids))
        _add(archive, "hop_seconds", np.float64(hop * frame_seconds(encoder)))
        _add(archive, "encoder", np.array(encoder.fingerprint()))
        for i in tqdm(range(len(cache)), desc="frames", unit="track", disable=not progress):
            seconds, feats = cqt_frame_embeddings(cache[i], encoder, hop, batch_size=batch_size)
            _add(archive, f"timestamps_{i}", seconds)
            _add(archive, f"features_{i}", feats)
    return out


def _add(archive: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    with archive.open(f"{name}.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)
