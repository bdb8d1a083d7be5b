"""SimCLR's method (`train.method=simclr`) and the CLMR baseline (Spijkervet & Burgoyne 2021) it makes
with SampleCNN on raw waveforms (`--config clmr`).

For a waveform encoder, two views of a track are two random 59,049-sample crops (2.68 s at
22,050 Hz) of its audio (`TwoWaveCrops`), each through CLMR's chain of waveform augmentations,
applied here as batched torch operations with their CLMR probabilities (`ClmrConfig`); for a
spectrogram encoder, the two views and their augmentations are MoCo's. The loss is NT-Xent over
the 2N views of a batch: each view's positive is its partner, the other 2N − 2 its negatives.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from s3t import audio
from s3t.cache import Cache
from s3t.config import ClmrConfig, Config
from s3t.engine import seed_of
from s3t.methods import Method, register_method, spectrogram_views
from s3t.models import SAMPLES, build_encoder
from s3t.moco import projection_head

def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss for two batches of views (N, C) of the same N items: cross-entropy of each
    view's partner among the other 2N − 1 views, by cosine similarity / temperature."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, C)
    n = len(z1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))  # a view is not its own negative
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, partner)


# --- waveform augmentations: (B, N) float waves, each applied to a random subset of the batch ---

def _chosen(batch: int, p: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(batch, generator=gen, device=gen.device) < p


def _uniform(batch: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(batch, generator=gen, device=gen.device)


def _fft_filter(x: torch.Tensor, cutoff: torch.Tensor, high_pass: torch.Tensor) -> torch.Tensor:
    """Brick-wall filter in the frequency domain, per row: keep above (high-pass) or below the cutoff."""
    spectrum = torch.fft.rfft(x)
    freqs = torch.fft.rfftfreq(x.shape[-1], 1 / audio.SAMPLE_RATE, device=x.device)  # (F,)
    keep = torch.where(high_pass[:, None], freqs[None] >= cutoff[:, None], freqs[None] <= cutoff[:, None])
    return torch.fft.irfft(spectrum * keep, n=x.shape[-1])


def _reverb(x: torch.Tensor, decay_s: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Convolution with an exponentially decaying noise tail (a synthetic room), mixed 1 : 0.3."""
    n = x.shape[-1]
    length = int(0.5 * audio.SAMPLE_RATE)
    t = torch.arange(length, device=x.device) / audio.SAMPLE_RATE
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
        out[i] = y[:n] if m >= n else y.repeat(math.ceil(n / m))[:n]
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
        shift = int(torch.randint(200, 501, (1,), generator=gen, device=gen.device)) * audio.SAMPLE_RATE // 1000
        x[i, shift:] += 0.5 * x[i, :-shift].clone()
    pitched = _chosen(B, cfg.pitch_p, gen)
    if pitched.any():
        x[pitched] = _pitch_shift(x[pitched], _uniform(int(pitched.sum()), -5.0, 5.0, gen))
    wet = _chosen(B, cfg.reverb_p, gen)
    if wet.any():
        x[wet] = _reverb(x[wet], _uniform(int(wet.sum()), 0.1, 0.8, gen), gen)
    return x


# --- data: two random crops of a cached track's audio, decoded from its source file ---

class TwoWaveCrops(torch.utils.data.Dataset):
    """Two random crops (2, SAMPLES) float32 of item i's audio (a clip's own span for clip caches),
    and the item's index (SimCLR's negatives are the batch, so no track id is needed)."""

    def __init__(self, cache: Cache, indices: list[int], seed: int):
        self.items = [cache.audio_span(i) for i in indices]
        self.seed = seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, i = key
        source, start, seconds = self.items[i]
        wave = torch.from_numpy(audio.load_audio(source, offset=start, duration=seconds))
        if len(wave) < SAMPLES:
            wave = wave.repeat(math.ceil(SAMPLES / max(1, len(wave))))
        gen = torch.Generator().manual_seed(seed_of(self.seed, epoch, i))
        starts = torch.randint(0, len(wave) - SAMPLES + 1, (2,), generator=gen).tolist()
        return torch.stack([wave[s : s + SAMPLES] for s in starts]), i


class SimCLR(Method):
    """An encoder and a projection head (two linear layers) trained by NT-Xent on the two views of each
    item: waveform views through CLMR's augmentations, spectrogram views through MoCo's."""

    name = "simclr"

    def __init__(self, encoder: torch.nn.Module, config: Config):
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.head = projection_head(encoder.num_features, encoder.num_features, config.clmr.dim, 2)

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor], gen: torch.Generator
                ) -> tuple[torch.Tensor, dict[str, float]]:
        views, _ = batch  # (B, 2, SAMPLES) waves or (B, 2, 84, T) log-CQTs
        B = views.shape[0]
        if self.encoder.input_kind == "wave":
            x = augment_waves(views.flatten(0, 1), self.config.clmr, gen).unflatten(0, (B, 2))[:, :, None]
        else:
            x = spectrogram_views(views, self.config, gen)
        # each view's batch through the encoder alone, so BatchNorm never sees a view beside its partner
        z1, z2 = (self.head(self.encoder(x[:, v])) for v in (0, 1))
        return nt_xent(z1, z2, self.config.clmr.temperature), {}


@register_method("simclr")
def build_simclr(cfg: Config) -> SimCLR:
    return SimCLR(build_encoder(cfg.model), cfg)
