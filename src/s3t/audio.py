"""Audio in: decoding, resampling and the constant-Q transform.

This is the only module that decodes or resamples audio. Everything downstream sees
either mono float32 waveforms at `SAMPLE_RATE` or log-magnitude CQTs of shape (…, 84, T).
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
import threading
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

SAMPLE_RATE = 22050
HOP_LENGTH = 512
N_BINS = 84
BINS_PER_OCTAVE = 12
FMIN = 32.703195662574764  # C1, as librosa.note_to_hz("C1")
AMIN = 1e-5  # magnitude floor: log_cqt never goes below FLOOR_DB, digital silence included
FLOOR_DB = 20.0 * math.log10(AMIN)  # -100 dB; also the fill value of masks, shifts and padding
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


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the header, without decoding; raises `AudioError`."""
    _check_readable_file(path)
    try:
        info = sf.info(str(path))
        return info.frames / info.samplerate if info.samplerate else 0.0
    except Exception as e:
        soundfile_error = e
    try:
        import av

        with av.open(str(path)) as container:
            stream = next(s for s in container.streams if s.type == "audio")
            if stream.duration is not None:
                return float(stream.duration * stream.time_base)
            return container.duration / av.time_base if container.duration else 0.0
    except Exception:
        raise AudioError(path, f"cannot read header ({type(soundfile_error).__name__}: {soundfile_error})") from None


class CQT(torch.nn.Module):
    """Batched magnitude CQT: 84 bins, 12/octave from C1, hop 512, Hann, librosa's scale.

    The kernels, their lengths and the librosa normalisation are nnAudio's `CQT1992v2`.
    nnAudio convolves every bin with a kernel zero-padded to the longest bin's width
    (16,384 taps); a bin an octave up is half as long, so most of those taps multiply
    zeros. Here each octave is convolved with only its own support: the same sums
    (equal to nnAudio's output up to float rounding), about 3x faster on CPU.
    """

    def __init__(self) -> None:
        super().__init__()
        from nnAudio.features.cqt import CQT1992v2  # import here: nnAudio is slow to import

        ref = CQT1992v2(
            sr=SAMPLE_RATE, hop_length=HOP_LENGTH, fmin=FMIN, n_bins=N_BINS,
            bins_per_octave=BINS_PER_OCTAVE, window="hann", pad_mode="constant", verbose=False,
        )
        real = ref.cqt_kernels_real[:, 0]  # (84, W)
        imag = ref.cqt_kernels_imag[:, 0]  # (84, W)
        self.width = real.shape[1]
        support = (real != 0) | (imag != 0)
        first = support.float().argmax(dim=1)
        last = self.width - 1 - support.flip(1).float().argmax(dim=1)
        self.spans: list[tuple[int, int]] = []
        for g in range(math.ceil(N_BINS / BINS_PER_OCTAVE)):
            rows = slice(g * BINS_PER_OCTAVE, min((g + 1) * BINS_PER_OCTAVE, N_BINS))
            a, b = int(first[rows].min()), int(last[rows].max()) + 1
            # real and imaginary parts of one octave in one conv: (2·bins, 1, b − a)
            kernel = torch.cat([real[rows, a:b], -imag[rows, a:b]])[:, None, :]
            self.register_buffer(f"kernel{g}", kernel.contiguous())
            self.spans.append((a, b))
        self.register_buffer("scale", ref.lenghts.sqrt().view(-1, 1))  # librosa normalisation

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """(B, N) float waveforms at 22,050 Hz -> (B, 84, N // 512 + 1) magnitudes."""
        x = torch.nn.functional.pad(waves[:, None, :], (self.width // 2, self.width // 2))
        n_frames = (x.shape[-1] - self.width) // HOP_LENGTH + 1
        parts = []
        with _full_float32(waves.device):
            for g, (a, b) in enumerate(self.spans):
                segment = x[..., a : a + (n_frames - 1) * HOP_LENGTH + (b - a)]
                out = torch.nn.functional.conv1d(segment, getattr(self, f"kernel{g}"), stride=HOP_LENGTH)
                re, im = out.chunk(2, dim=1)  # (B, bins, T) each
                parts.append(torch.sqrt(re * re + im * im))
        return torch.cat(parts, dim=1) * self.scale  # (B, 84, T)


_TF32_LOCK = threading.Lock()


@contextlib.contextmanager
def _full_float32(device: torch.device):
    """cuDNN convolutions in full float32 on a GPU: its default TF32 keeps 10 mantissa bits, which moved
    the quiet bins of a real track's log-CQT by up to 9 dB against the CPU (benchmarks/RESULTS.md, GPU check)."""
    if device.type != "cuda":
        yield
        return
    with _TF32_LOCK:
        before = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32 = before


_CPU_CHUNK = 8
_CQT_BY_DEVICE: dict[torch.device, CQT] = {}
_CQT_LOCK = threading.Lock()


def _cqt_module(device: torch.device) -> CQT:
    with _CQT_LOCK:
        if device not in _CQT_BY_DEVICE:
            _CQT_BY_DEVICE[device] = CQT().to(device)
        return _CQT_BY_DEVICE[device]


def n_frames(n_samples: int) -> int:
    """Number of CQT frames for a waveform of `n_samples` samples."""
    return n_samples // HOP_LENGTH + 1


def amplitude_to_db(mag: torch.Tensor) -> torch.Tensor:
    """Magnitude -> dB with a fixed floor (FLOOR_DB): finite on digital silence."""
    return 20.0 * torch.log10(mag.clamp_min(AMIN))


@torch.no_grad()
def cqt(waves: torch.Tensor | np.ndarray, log: bool = True) -> torch.Tensor:
    """Constant-Q transform of a batch of 22,050 Hz waveforms.

    waves: (B, N) or (N,), float, on any device (numpy arrays go to the CPU).
    Returns (B, 84, N // 512 + 1) float32 on the waves' device: dB (floor FLOOR_DB) when
    `log`, else magnitudes on librosa.cqt's scale.
    """
    x = torch.as_tensor(waves, dtype=torch.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"waves must be (B, N) or (N,), got shape {tuple(x.shape)}")
    module = _cqt_module(x.device)
    # On CPU, batches of more than ~8 clips fall out of cache and get slower per clip.
    chunk = len(x) if x.device.type != "cpu" else _CPU_CHUNK
    mag = torch.cat([module(part) for part in x.split(chunk)])  # (B, 84, T)
    return amplitude_to_db(mag) if log else mag


def compress_time(mag: torch.Tensor, factor: int) -> torch.Tensor:
    """Average-pool magnitudes (…, F, T) over `factor` frames -> (…, F, ceil(T / factor)).

    The last window averages whatever frames remain, so no audio is dropped. Pooling is
    done on magnitudes, before the log, so that a window's value is its mean energy scale.
    """
    if factor < 1:
        raise ValueError(f"time compression must be >= 1, got {factor}")
    if factor == 1:
        return mag
    T = mag.shape[-1]
    pad = -T % factor
    padded = torch.nn.functional.pad(mag, (0, pad))
    sums = padded.unflatten(-1, (-1, factor)).sum(-1)  # (…, F, ceil(T / factor))
    counts = torch.full((sums.shape[-1],), float(factor), device=mag.device)
    counts[-1] = factor - pad
    return sums / counts
