"""Audio in: decoding and resampling, and nothing else.

This is the only module that decodes or resamples audio. Everything downstream sees mono
float32 waveforms at `SAMPLE_RATE` (and, through `s3t.audio.cqt`, log-CQTs of shape (…, 84, T)).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 22050
# soundfile's formats, then what only FFmpeg's libraries read (through PyAV): AAC in M4A/MP4, Opus
# in WebM, WMA, audio tracks of video containers
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".au", ".aiff", ".aif",
                    ".m4a", ".aac", ".mp4", ".m4b", ".webm", ".mka", ".mkv", ".wma", ".asf")


class AudioError(Exception):
    """A file that cannot be turned into audio; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def load_audio(
    path: str | Path,
    sr: int = SAMPLE_RATE,
    offset: float = 0.0,
    duration: float | None = None,
) -> np.ndarray:
    """Decode `path` to a mono float32 waveform of shape (N,) at `sr` Hz.

    Any channel count is averaged to mono; any rate is resampled with soxr (HQ).
    `offset` and `duration` are in seconds of the source. Raises `AudioError` for anything
    that is not finite audio with at least one sample: it never returns garbage.
    """
    if offset < 0 or (duration is not None and duration <= 0):
        raise ValueError(f"offset must be >= 0 and duration > 0, got {offset}, {duration}")
    _check_readable_file(path)
    try:
        data, source_sr = _read_soundfile(path, offset, duration)
    except sf.LibsndfileError as e:
        if "Format not recognised" not in str(e) and "unknown format" not in str(e).lower():
            raise AudioError(path, f"cannot decode ({type(e).__name__}: {e})") from None
        data, source_sr = _read_ffmpeg(path, offset, duration)  # a format soundfile does not read
    except Exception as e:  # soundfile raises RuntimeError, TypeError … too
        raise AudioError(path, f"cannot decode ({type(e).__name__}: {e})") from None
    if data.shape[0] == 0:
        raise AudioError(path, "no audio samples")
    wave = data.mean(axis=1)  # (N,)
    if not np.isfinite(wave).all():
        raise AudioError(path, "non-finite samples (NaN or Inf)")
    if source_sr != sr:
        wave = soxr.resample(wave, source_sr, sr, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(wave, dtype=np.float32)


def _read_soundfile(path: str | Path, offset: float, duration: float | None) -> tuple[np.ndarray, int]:
    """(N, C) float32 samples and their rate, through libsndfile (WAV, FLAC, OGG, MP3, AIFF …)."""
    with sf.SoundFile(str(path)) as f:
        start = int(round(offset * f.samplerate))
        if start > 0:
            f.seek(min(start, f.frames) if f.frames > 0 else start)
        frames = -1 if duration is None else int(round(duration * f.samplerate))
        return f.read(frames, dtype="float32", always_2d=True), f.samplerate


def _read_ffmpeg(path: str | Path, offset: float, duration: float | None) -> tuple[np.ndarray, int]:
    """(N, C) float32 samples of the first audio stream and their rate, through FFmpeg's libraries
    (PyAV, which ships its own FFmpeg): M4A/AAC, Opus in WebM, WMA, MP4/MKV audio tracks."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise AudioError(path, "no audio stream in the container")
            rate = stream.codec_context.sample_rate
            to_float = av.AudioResampler(format="fltp", rate=rate)  # planar float32, channels kept
            chunks = [f.to_ndarray() for frame in container.decode(stream) for f in to_float.resample(frame)]
            chunks += [f.to_ndarray() for f in to_float.resample(None)]
    except AudioError:
        raise
    except Exception as e:  # av raises its FFmpegError family, and ValueError on odd streams
        raise AudioError(path, f"cannot decode ({type(e).__name__}: {e})") from None
    data = np.concatenate(chunks, axis=1).T if chunks else np.zeros((0, 1), np.float32)  # (N, C)
    start = int(round(offset * rate))
    end = None if duration is None else start + int(round(duration * rate))
    return data[start:end], rate


def _check_readable_file(path: str | Path) -> None:
    """Refuse what libsndfile would misreport: a FIFO or device named like audio (opening it would
    block or never end) and a file we may not read ("System error" there, the reason here)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise AudioError(path, "not a regular file (a pipe, device or folder)")
        open(path, "rb").close()
    except OSError as e:
        raise AudioError(path, f"cannot open ({e.strerror})") from None
