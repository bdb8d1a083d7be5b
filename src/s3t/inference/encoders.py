"""Frozen encoders: a trained or random backbone with the input pipeline it was trained with, and
the reference that needs none (cqt-stats). `s3t.inference.load` builds them from checkpoints and
exports, `s3t.inference.features` runs them."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import torch

from s3t.audio.constant_q import FLOOR_DB, N_BINS, log_cqt_frames
from s3t.audio.decode import load_audio
from s3t.config.schema import ModelConfig
from s3t.data.cache import Cache
from s3t.models.backbones import SAMPLES, build_encoder
from s3t.transforms.augment import loop_to, resize_time
from s3t.transforms.preprocess import model_input, to_model_input


class Encoder(torch.nn.Module):
    """A frozen backbone with the input pipeline it was trained with: log-CQT (B, 84, T) -> (B, D).

    `time_compression` is that of the cache it was trained on: inputs must be prepared alike.
    `name` says where the weights came from (a checkpoint path, or 'random').
    """

    def __init__(self, backbone: torch.nn.Module, model_cfg: ModelConfig, time_compression: int = 1,
                 name: str = "random"):
        super().__init__()
        self.backbone = read_out(backbone, model_cfg).eval().requires_grad_(False)
        self.model_cfg, self.time_compression, self.name = model_cfg, time_compression, name
        self.frames = SAMPLES if backbone.input_kind == "wave" else model_cfg.frames
        self.num_features = self.backbone.num_features
        _check_short(model_cfg, self.backbone)

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters(), torch.zeros(0)).device

    def uses_windows(self, windows: bool | None = None) -> bool:
        """`windows` if given, else what the encoder's config says (`model.embedding`)."""
        return self.model_cfg.embedding == "windows" if windows is None else windows

    @torch.no_grad()
    def forward(self, cqt: torch.Tensor) -> torch.Tensor:
        """(B, 84, T) log-CQTs -> (B, D); each resized in time to the input frames first, unless
        `model.short` reads a shorter clip at its own width (native) or marks its padding with NaN (valid)."""
        cqt = cqt.to(self.device, torch.float32)
        if self.model_cfg.short == "native" and cqt.shape[-1] < self.frames:
            return self.backbone(model_input(cqt, self.model_cfg, any_width=True))
        if self.model_cfg.short == "valid" and cqt.isnan().any():
            return self._forward_valid(cqt)
        cqt = resize_time(cqt, self.frames)  # (B, 84, frames)
        return self.backbone(model_input(cqt, self.model_cfg))

    def _forward_valid(self, cqt: torch.Tensor) -> torch.Tensor:
        """Frames that are NaN in every bin are padding: the floor in the input, left out of the pooling."""
        valid_frames = ~cqt.isnan().all(1, keepdim=True)  # (B, 1, T)
        # the mask takes the input's path (fold, pad) as dB values: the clip's frames at 0 dB, the rest at the floor
        marks = torch.where(valid_frames, 0.0, FLOOR_DB).expand_as(cqt)
        m = self.model_cfg
        valid = to_model_input(marks, m.preprocessor, m.input_size, m.segments) > FLOOR_DB / 2
        return self.backbone(model_input(cqt.nan_to_num(FLOOR_DB), m), valid=valid)

    def inputs_of(self, cqt: np.ndarray | torch.Tensor, windows: bool | None = None) -> torch.Tensor:
        """One clip's (84, T) log-CQT -> the (W, 84, frames) crops whose mean feature is its embedding:
        the whole clip resized (W = 1), or with `windows` every half-overlapping window of the input
        length (a clip shorter than one window is resized whole, or read as `model.short` says)."""
        x = torch.as_tensor(np.asarray(cqt, dtype=np.float32))
        T = x.shape[-1]
        if T < self.frames and self.model_cfg.short != "resize":
            return fit_short(x, self.frames, self.model_cfg.short).unsqueeze(0)
        if not self.uses_windows(windows) or T <= self.frames:
            return resize_time(x, self.frames).unsqueeze(0)
        hop = self.frames // 2
        starts = list(range(0, T - self.frames + 1, hop))
        return torch.stack([x[:, s : s + self.frames] for s in starts])

    def clip_of_wave(self, wave: np.ndarray) -> np.ndarray:
        """What `inputs_of` takes, from a mono 22,050 Hz wave: its (84, T) log-CQT."""
        return log_cqt_frames(np.asarray(wave, np.float32), self.time_compression).T

    def clip_of_cache(self, cache: Cache, i: int) -> np.ndarray:
        """What `inputs_of` takes, for the cache's item i: its cached log-CQT."""
        return cache[i]

    def fingerprint(self) -> str:
        """A short hash of the weights and input pipeline: names feature files so they never go stale."""
        h = hashlib.sha1(repr((self.model_cfg, self.time_compression)).encode())
        for k, v in sorted(self.backbone.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:12]


def fit_short(x: torch.Tensor, frames: int, how: str) -> torch.Tensor:
    """An (84, T) log-CQT with T < frames as `Encoder.forward` reads it: `pad` keeps it and fills the rest
    to `frames` with the floor, `valid` with NaN (padding, left out of the pooling), `loop` repeats it;
    `native` leaves it as it is."""
    if how == "loop":
        return loop_to(x, frames)[:, :frames]
    if how == "native":
        return x
    fill = float("nan") if how == "valid" else FLOOR_DB
    return torch.nn.functional.pad(x, (0, frames - x.shape[-1]), value=fill)


def _check_short(model_cfg: ModelConfig, backbone: torch.nn.Module) -> None:
    """`model.short` valid needs a backbone that pools a feature map (Swin, ResNet); native one of any width."""
    name = model_cfg.name
    if model_cfg.short == "valid" and not hasattr(backbone, "pooling"):
        raise ValueError(f"model.short=valid pools the valid cells of a Swin's or ResNet's map; {name} pools "
                         "its own way")
    if model_cfg.short == "native" and not getattr(backbone, "any_width", False):
        raise ValueError(f"model.short=native needs an encoder that takes any input width (the ResNets); {name} "
                         "takes a fixed size")


def read_out(backbone: torch.nn.Module, model_cfg: ModelConfig) -> torch.nn.Module:
    """`backbone` pooled as `model.readout` says: itself, or a new module holding its weights."""
    if model_cfg.readout in ("", model_cfg.pooling):
        return backbone
    reader = build_encoder(replace(model_cfg, pooling=model_cfg.readout))
    reader.load_state_dict(backbone.state_dict())  # pooling holds no weights
    return reader.to(next(backbone.parameters()).device)


class WaveEncoder(Encoder):
    """A frozen waveform encoder (CLMR's SampleCNN): a clip's embedding is the mean feature of its
    consecutive 59,049-sample windows (CLMR's protocol), decoded from the source audio."""

    def inputs_of(self, wave: np.ndarray | torch.Tensor, windows: bool | None = None) -> torch.Tensor:
        x = loop_to(torch.as_tensor(np.asarray(wave, dtype=np.float32)), SAMPLES)
        return x[: len(x) // SAMPLES * SAMPLES].reshape(-1, SAMPLES)  # (W, SAMPLES)

    @torch.no_grad()
    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.backbone(waves.to(self.device, torch.float32)[:, None])

    def clip_of_wave(self, wave: np.ndarray) -> np.ndarray:
        return np.asarray(wave, np.float32)

    def clip_of_cache(self, cache: Cache, i: int) -> np.ndarray:
        source, start, seconds = cache.audio_span(i)
        return load_audio(source, offset=start, duration=seconds)


class _NoWeights(torch.nn.Module):
    num_features = 2 * N_BINS
    input_kind = "statistics"


class CqtStatsEncoder(Encoder):
    """The reference that needs no encoder (cqt-stats): per-bin mean and standard deviation of a
    clip's log-CQT over time, (84, T) -> (168,). A representation must beat it to be worth having."""

    def __init__(self, time_compression: int = 1):
        super().__init__(_NoWeights(), ModelConfig(), time_compression, name="cqt-stats")

    def inputs_of(self, cqt: np.ndarray | torch.Tensor, windows: bool | None = None) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(cqt, dtype=np.float32))  # (84, T)
        return torch.cat([x.mean(1), x.std(1, unbiased=False)]).unsqueeze(0)  # (1, 168)

    @torch.no_grad()
    def forward(self, stats: torch.Tensor) -> torch.Tensor:
        return stats.float()

    def fingerprint(self) -> str:
        return hashlib.sha1(f"cqt-stats/{self.time_compression}".encode()).hexdigest()[:12]


def random_encoder(model_cfg: ModelConfig | None = None, seed: int = 0, time_compression: int = 1,
                   device: str | torch.device = "cpu") -> Encoder:
    """The Random Init baseline: an untrained encoder (seeded) with the same pipeline."""
    model_cfg = model_cfg or ModelConfig()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = build_encoder(model_cfg)
    return Encoder(backbone, model_cfg, time_compression, name=f"random(seed={seed})").to(device)


