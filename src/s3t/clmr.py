"""The CLMR baseline (Spijkervet & Burgoyne 2021): SampleCNN on raw waveforms, SimCLR's NT-Xent.

Two views of a track are two random 59,049-sample crops (2.68 s at 22,050 Hz) of its audio,
each through CLMR's chain of waveform augmentations, applied here as batched torch operations
with their CLMR probabilities (`ClmrConfig`). The loss is NT-Xent over the 2N views of a batch:
each view's positive is its partner, the other 2N − 2 views are its negatives.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from s3t import __version__, audio
from s3t.cache import Cache, open_cache
from s3t.checkpoint import load_checkpoint, save_checkpoint
from s3t.config import ClmrConfig, Config, save_config
from s3t.moco import projection_head
from s3t.train import EpochSampler, cosine_lr, seed_of

log = logging.getLogger(__name__)

SAMPLES = 59049  # 3^10: SampleCNN's receptive field, one feature per window


class SampleCNN(torch.nn.Module):
    """Lee et al. (2017) as CLMR uses it: a strided 3-sample conv, then blocks of (3-tap conv,
    BatchNorm, ReLU, 3× max-pool) down to one step: (B, 1, 59049) -> (B, D)."""

    def __init__(self, channels: tuple[int, ...] = (128, 128, 128, 256, 256, 256, 256, 256, 256, 512)):
        super().__init__()
        layers = [torch.nn.Conv1d(1, channels[0], 3, stride=3), torch.nn.BatchNorm1d(channels[0]), torch.nn.ReLU()]
        for c_in, c_out in zip(channels, channels[1:]):
            layers += [torch.nn.Conv1d(c_in, c_out, 3, padding=1), torch.nn.BatchNorm1d(c_out), torch.nn.ReLU(),
                       torch.nn.MaxPool1d(3)]
        layers += [torch.nn.Conv1d(channels[-1], channels[-1], 3, padding=1), torch.nn.BatchNorm1d(channels[-1]),
                   torch.nn.ReLU()]
        self.net = torch.nn.Sequential(*layers)
        self.num_features = channels[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1:] != (1, SAMPLES):
            raise ValueError(f"expected waves (B, 1, {SAMPLES}), got {tuple(x.shape)}")
        return self.net(x).flatten(1)  # the time axis is down to 1


SAMPLECNN_PRESETS = {
    "samplecnn": (128, 128, 128, 256, 256, 256, 256, 256, 256, 512),  # CLMR's, 2.4 M parameters
    "samplecnn_small": (32, 32, 32, 64, 64, 64, 64, 64, 64, 128),  # 0.16 M, for CPU runs and tests
}


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
    return torch.rand(batch, generator=gen) < p


def _uniform(batch: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(batch, generator=gen)


def _fft_filter(x: torch.Tensor, cutoff: torch.Tensor, high_pass: torch.Tensor) -> torch.Tensor:
    """Brick-wall filter in the frequency domain, per row: keep above (high-pass) or below the cutoff."""
    spectrum = torch.fft.rfft(x)
    freqs = torch.fft.rfftfreq(x.shape[-1], 1 / audio.SAMPLE_RATE)  # (F,)
    keep = torch.where(high_pass[:, None], freqs[None] >= cutoff[:, None], freqs[None] <= cutoff[:, None])
    return torch.fft.irfft(spectrum * keep, n=x.shape[-1])


def _reverb(x: torch.Tensor, decay_s: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Convolution with an exponentially decaying noise tail (a synthetic room), mixed 1 : 0.3."""
    n = x.shape[-1]
    length = int(0.5 * audio.SAMPLE_RATE)
    t = torch.arange(length) / audio.SAMPLE_RATE
    tail = torch.randn(len(x), length, generator=gen) * torch.exp(-t[None] / decay_s[:, None])
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
    x[noisy] += 0.01 * torch.randn(int(noisy.sum()), x.shape[1], generator=gen)
    gain = torch.where(_chosen(B, cfg.gain_p, gen), 10 ** (_uniform(B, -6.0, 0.0, gen) / 20), torch.ones(B))
    x = x * gain[:, None]
    filt = _chosen(B, cfg.filter_p, gen)
    if filt.any():
        high = torch.rand(B, generator=gen) < 0.5
        cutoff = torch.where(high, _uniform(B, 200.0, 1200.0, gen), _uniform(B, 2200.0, 4000.0, gen))
        x[filt] = _fft_filter(x[filt], cutoff[filt], high[filt])
    delayed = _chosen(B, cfg.delay_p, gen)
    for i in torch.nonzero(delayed).flatten().tolist():
        shift = int(torch.randint(200, 501, (1,), generator=gen)) * audio.SAMPLE_RATE // 1000
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
    """(2, SAMPLES) float32: two random crops of item i's audio (a clip's own span for clip caches)."""

    def __init__(self, cache: Cache, seed: int):
        self.items = [cache.audio_span(i) for i in range(len(cache))]
        self.seed = seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int]) -> torch.Tensor:
        epoch, i = key
        source, start, seconds = self.items[i]
        wave = torch.from_numpy(audio.load_audio(source, offset=start, duration=seconds))
        if len(wave) < SAMPLES:
            wave = wave.repeat(math.ceil(SAMPLES / max(1, len(wave))))
        gen = torch.Generator().manual_seed(seed_of(self.seed, epoch, i))
        starts = torch.randint(0, len(wave) - SAMPLES + 1, (2,), generator=gen).tolist()
        return torch.stack([wave[s : s + SAMPLES] for s in starts])


def build_samplecnn(name: str) -> SampleCNN:
    if name not in SAMPLECNN_PRESETS:
        raise ValueError(f"unknown CLMR encoder {name!r}; available: {sorted(SAMPLECNN_PRESETS)}")
    return SampleCNN(SAMPLECNN_PRESETS[name])


class CLMR(torch.nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.encoder = build_samplecnn(cfg.model.name)
        self.head = projection_head(self.encoder.num_features, self.encoder.num_features, cfg.clmr.dim, 2)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(waves[:, None]))


def pretrain_clmr(cfg: Config, data: str | Path, out: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """CLMR on the audio behind the cache `data` (its sources are decoded, not its CQTs); returns last.pt."""
    out = Path(out)
    cache = open_cache(data)
    B = cfg.train.batch_size
    if len(cache) < B:
        raise ValueError(f"{len(cache)} tracks, fewer than one batch of {B}; lower train.batch_size")
    torch.manual_seed(seed_of(cfg.train.seed, 0))
    model = CLMR(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    sampler = EpochSampler(len(cache), B, 0, 1, cfg.train.seed)
    loader = torch.utils.data.DataLoader(TwoWaveCrops(cache, cfg.train.seed), batch_size=B, sampler=sampler,
                                         num_workers=cfg.train.workers, drop_last=True,
                                         persistent_workers=cfg.train.workers > 0)
    total = cfg.optim.epochs * sampler.batches_per_epoch
    warmup = round(cfg.optim.warmup_epochs * sampler.batches_per_epoch)
    step = epoch = 0
    if resume and (out / "last.pt").exists():
        state = load_checkpoint(out / "last.pt")
        model.load_state_dict(state["clmr"])
        opt.load_state_dict(state["optimizer"])
        step, epoch = state["step"], state["epoch"]
        log.info("resumed %s at epoch %d", out / "last.pt", epoch)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    gen, start = torch.Generator(), time.perf_counter()
    while epoch < cfg.optim.epochs:
        sampler.epoch, sampler.start_batch = epoch, step - epoch * sampler.batches_per_epoch
        model.train()
        losses = []
        for views in tqdm(loader, desc=f"clmr epoch {epoch}", disable=not progress, unit="batch"):
            for group in opt.param_groups:
                group["lr"] = cosine_lr(step, total, warmup, cfg.optim.lr * B / cfg.optim.lr_batch, cfg.optim.min_lr)
            gen.manual_seed(seed_of(cfg.train.seed, step, 2))
            x = augment_waves(views.flatten(0, 1), cfg.clmr, gen).unflatten(0, (B, 2))
            loss = nt_xent(model(x[:, 0]), model(x[:, 1]), cfg.clmr.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
        epoch += 1
        log.info("epoch %d: NT-Xent %.4f (chance %.4f), %.0f s", epoch, np.mean(losses), math.log(2 * B - 1),
                 time.perf_counter() - start)
        save_checkpoint(out / "last.pt", {
            "version": __version__, "config": cfg.to_dict(), "step": step, "epoch": epoch, "cache_meta": cache.meta,
            "model": {f"encoder_q.{k}": v for k, v in model.encoder.state_dict().items()},
            "clmr": model.state_dict(), "optimizer": opt.state_dict(), "loss": float(np.mean(losses))})
    return out / "last.pt"
