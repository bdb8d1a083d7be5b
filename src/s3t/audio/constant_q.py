"""The constant-Q transform: 84 bins, 12 per octave from C1, hop 512 at 22,050 Hz, in dB.

Everything downstream of this module sees log-magnitude CQTs of shape (…, 84, T), or the
time-major float16 (T, 84) frames the cache stores.
"""

from __future__ import annotations

import contextlib
import math
import threading

import numpy as np
import torch

from s3t.audio.decode import SAMPLE_RATE

HOP_LENGTH = 512
N_BINS = 84
BINS_PER_OCTAVE = 12
FMIN = 32.703195662574764  # C1, as librosa.note_to_hz("C1")
AMIN = 1e-5  # magnitude floor: log_cqt never goes below FLOOR_DB, digital silence included
FLOOR_DB = 20.0 * math.log10(AMIN)  # -100 dB; also the fill value of masks, shifts and padding


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
        from nnAudio.features.cqt import (
            CQT1992v2,  # import here: nnAudio is slow to import
        )

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


def kernel_reach() -> int:
    """Frames either side of a frame that its CQT sums read (half the longest kernel, 16 frames)."""
    return _cqt_module(torch.device("cpu")).width // 2 // HOP_LENGTH


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


def log_cqt_frames(wave: np.ndarray | torch.Tensor, time_compression: int, device: str = "cpu") -> np.ndarray:
    """Mono 22,050 Hz wave (N,) -> time-major float16 log-CQT (frames, 84), as cached."""
    return log_cqt_batch([wave], time_compression, device)[0]


def log_cqt_batch(waves: list[np.ndarray | torch.Tensor], time_compression: int, device: str = "cpu"
                  ) -> list[np.ndarray]:
    """`log_cqt_frames` of several waves in one CQT call (a GPU is busy only with a batch): each is
    zero-padded to the longest, which is what the CQT's own constant padding sees past its end, and
    its frames are cut back to its length before pooling."""
    x = torch.zeros(len(waves), max(len(w) for w in waves), device=device)
    for i, w in enumerate(waves):
        x[i, : len(w)] = torch.as_tensor(w, device=device)
    mag = cqt(x, log=False)  # (B, 84, T)
    specs = []
    for i, w in enumerate(waves):
        own = mag[i : i + 1, :, : n_frames(len(w))]  # the frames of its own samples
        spec = amplitude_to_db(compress_time(own, time_compression))[0]  # (84, T')
        specs.append(spec.T.to(torch.float16).cpu().numpy())
    return specs
