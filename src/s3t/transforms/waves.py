"""CLMR's waveform augmentations (Spijkervet & Burgoyne 2021) as batched torch operations on
(B, N) float waves at 22,050 Hz, each applied to a random subset of the batch with its CLMR
probability (`ClmrConfig`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from s3t.audio.decode import SAMPLE_RATE
from s3t.config.schema import ClmrConfig
from s3t.transforms.augment import loop_to


def _chosen(batch: int, p: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(batch, generator=gen, device=gen.device) < p


def _uniform(batch: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(batch, generator=gen, device=gen.device)


def _fft_filter(x: torch.Tensor, cutoff: torch.Tensor, high_pass: torch.Tensor) -> torch.Tensor:
    """Brick-wall filter in the frequency domain, per row: keep above (high-pass) or below the cutoff."""
    spectrum = torch.fft.rfft(x)
    freqs = torch.fft.rfftfreq(x.shape[-1], 1 / SAMPLE_RATE, device=x.device)  # (F,)
    keep = torch.where(high_pass[:, None], freqs[None] >= cutoff[:, None], freqs[None] <= cutoff[:, None])
    return torch.fft.irfft(spectrum * keep, n=x.shape[-1])


def _reverb(x: torch.Tensor, decay_s: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Convolution with an exponentially decaying noise tail (a synthetic room), mixed 1 : 0.3."""
    n = x.shape[-1]
    length = int(0.5 * SAMPLE_RATE)
    t = torch.arange(length, device=x.device) / SAMPLE_RATE
    tail = torch.randn(len(x), length, generator=gen, device=gen.device) * torch.exp(-t[None] / decay_s[:, None])
    tail = tail / tail.norm(dim=1, keepdim=True)
    wet = torch.fft.irfft(torch.fft.rfft(x, n=n + length) * torch.fft.rfft(tail, n=n + length), n=n + length)[:, :n]
    return x + 0.3 * wet


def _pitch_shift(x: torch.Tensor, semitones: torch.Tensor) -> torch.Tensor:
    """Resample each row by 2^(s/12) and crop or loop it back to its length (pitch and tempo move
    together, unlike CLMR's WavAugment pitch shift, which needs libsox)."""
    n = x.shape[-1]
    out = torch.empty_like(x)
    for i, s in enumerate(semitones.tolist()):
        m = max(2, round(n / 2 ** (s / 12)))
        y = F.interpolate(x[i][None, None], size=m, mode="linear", align_corners=False)[0, 0]
        out[i] = loop_to(y, n)[:n]
    return out


def augment_waves(x: torch.Tensor, cfg: ClmrConfig, gen: torch.Generator) -> torch.Tensor:
    """CLMR's chain on a batch of crops (B, N): polarity, noise, gain, filter, delay, pitch, reverb."""
    B = len(x)
    x = x.clone()
    flip = _chosen(B, cfg.polarity_p, gen)
    x[flip] = -x[flip]
    noisy = _chosen(B, cfg.noise_p, gen)
    x[noisy] += 0.01 * torch.randn(int(noisy.sum()), x.shape[1], generator=gen, device=gen.device)
    gain = torch.where(_chosen(B, cfg.gain_p, gen), 10 ** (_uniform(B, -6.0, 0.0, gen) / 20),
                       torch.ones(B, device=gen.device))
    x = x * gain[:, None]
    filt = _chosen(B, cfg.filter_p, gen)
    if filt.any():
        high = torch.rand(B, generator=gen, device=gen.device) < 0.5
        cutoff = torch.where(high, _uniform(B, 200.0, 1200.0, gen), _uniform(B, 2200.0, 4000.0, gen))
        x[filt] = _fft_filter(x[filt], cutoff[filt], high[filt])
    delayed = _chosen(B, cfg.delay_p, gen)
    for i in torch.nonzero(delayed).flatten().tolist():
        shift = int(torch.randint(200, 501, (1,), generator=gen, device=gen.device)) * SAMPLE_RATE // 1000
        x[i, shift:] += 0.5 * x[i, :-shift].clone()
    pitched = _chosen(B, cfg.pitch_p, gen)
    if pitched.any():
        x[pitched] = _pitch_shift(x[pitched], _uniform(int(pitched.sum()), -5.0, 5.0, gen))
    wet = _chosen(B, cfg.reverb_p, gen)
    if wet.any():
        x[wet] = _reverb(x[wet], _uniform(int(wet.sum()), 0.1, 0.8, gen), gen)
    return x
