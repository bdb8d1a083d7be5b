"""Encoders: one contract for every backbone, `(B, 1, …) -> (B, D)` with `num_features = D` and
`input_kind` saying what the input is: "spectrogram" (B, 1, H, W), the pre-processed log-CQT
(square, or 96 × T for the native pre-processor), or "wave" (B, 1, N), raw audio at 22,050 Hz.

`ENCODERS` maps a name to a builder: the paper's Swin-T and the other Swins (`s3t.models.swin`), the ResNet baselines (timm), a convolutional-recurrent network (the paper's
"MSNet-BiGRU" row) and CLMR's SampleCNN on waveforms. ResNets, the CRNN and SampleCNN hold
BatchNorm: under MoCo they need shuffle-BN (`s3t.methods.moco`), Swin's LayerNorm does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import timm
import torch
from timm.models.resnet import BasicBlock, ResNet

from s3t.config.schema import ModelConfig
from s3t.models.pooling import pool_valid, valid_cells
from s3t.models.swin import SWIN_PRESETS, SwinEncoder
from s3t.transforms.preprocess import check_geometry, input_shape


def _swin_builder(name: str) -> Callable[[ModelConfig], torch.nn.Module]:
    return lambda cfg: SwinEncoder(input_shape(cfg), SWIN_PRESETS[name], cfg.drop_path, cfg.freeze_patch_embed,
                                   cfg.pooling)


class ResNetEncoder(torch.nn.Module):
    """A timm ResNet with one input channel, pooled as `model.pooling` says: (B, 1, S, S) -> (B, D).
    The last stage's map is (B, C, rows, columns), rows following frequency as in the input."""

    input_kind = "spectrogram"
    any_width = True  # convolutions and a global pool: any input width (model.short=native)

    def __init__(self, name: str, drop_path: float, height: int = 256, pooling: str = "mean"):
        super().__init__()
        # MoCo's ResNet-50 (torchvision's defaults) starts every residual branch live: no zero-init
        common = dict(in_chans=1, num_classes=0, drop_path_rate=drop_path, zero_init_last=False)
        if name == "resnet_small":  # one basic block per stage at half width: ~1/8 of resnet18's work
            self.net = ResNet(BasicBlock, (1, 1, 1, 1), channels=(32, 64, 128, 256), stem_width=32, **common)
        else:
            self.net = timm.create_model(name, pretrained=False, **common)
        self.pooling = pooling
        rows = -(-height // self.net.feature_info[-1]["reduction"])  # of the last stage's map
        if pooling == "stages":
            self.num_features = sum(stage["num_chs"] for stage in self.net.feature_info[1:])
        else:
            self.num_features = self.net.num_features * {"mean": 1, "rows": rows, "rows_stats": 2 * rows}[pooling]

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """`valid` (B, 1, H, W), True where the input holds the clip: pool over those cells only."""
        if valid is not None:
            fmap = self.net.forward_features(x)
            return pool_valid(fmap, valid_cells(valid, fmap.shape[-2:]), self.pooling, 3, (2, 3))
        if self.pooling == "mean":
            return self.net(x)
        if self.pooling == "stages":
            return self._stage_means(x)
        fmap = self.net.forward_features(x)  # (B, C, rows, columns)
        if self.pooling == "rows":
            return fmap.mean(3).flatten(1)  # (B, C · rows)
        return torch.cat([fmap.mean(3).flatten(1), fmap.std(3).flatten(1)], 1)  # (B, 2 · C · rows)

    def _stage_means(self, x: torch.Tensor) -> torch.Tensor:
        """Each residual stage's map averaged over frequency and time, concatenated: (B, Σ stage widths);
        the last part is the mean-pooled feature."""
        stages = range(1, len(self.net.feature_info))  # timm's feature_info[0] is the stem
        maps = self.net.forward_intermediates(x, indices=list(stages), intermediates_only=True)
        return torch.cat([m.mean((2, 3)) for m in maps], 1)


@dataclass(frozen=True)
class CRNNPreset:
    channels: tuple[int, ...]  # one conv block (3×3 conv, BN, ReLU, 2×2 max-pool) per entry
    hidden: int  # GRU units per direction; the feature is 2 × hidden
    layers: int = 2


CRNN_PRESETS = {
    "crnn_bigru": CRNNPreset((64, 128, 256, 256), 256),  # 2.9 M parameters, 512-d features
    "crnn_small": CRNNPreset((16, 32, 64, 64), 64),  # 0.2 M, for CPU runs and tests
}


class CRNNEncoder(torch.nn.Module):
    """Convolutions over the spectrogram image, then a bidirectional GRU along its width (time),
    averaged over time: (B, 1, H, W) -> (B, 2 · hidden). The conv blocks halve both axes; what is
    left of the height is averaged away before the GRU."""

    input_kind = "spectrogram"
    any_width = True

    def __init__(self, preset: CRNNPreset):
        super().__init__()
        blocks, c_in = [], 1
        for c in preset.channels:
            blocks += [torch.nn.Conv2d(c_in, c, 3, padding=1, bias=False), torch.nn.BatchNorm2d(c),
                       torch.nn.ReLU(inplace=True), torch.nn.MaxPool2d(2)]
            c_in = c
        self.conv = torch.nn.Sequential(*blocks)
        self.gru = torch.nn.GRU(c_in, preset.hidden, num_layers=preset.layers, batch_first=True, bidirectional=True)
        self.num_features = 2 * preset.hidden
        self.min_size = 2 ** len(preset.channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 1 or min(x.shape[-2:]) < self.min_size:
            raise ValueError(f"expected input (B, 1, H, W) with H, W >= {self.min_size}, got {tuple(x.shape)}")
        h = self.conv(x).mean(dim=2).transpose(1, 2)  # (B, W', C): a sequence over time
        return self.gru(h)[0].mean(dim=1)  # (B, 2 · hidden)


SAMPLES = 59049  # 3^10: SampleCNN's receptive field, one feature per window (2.68 s at 22,050 Hz)


class SampleCNN(torch.nn.Module):
    """Lee et al. (2017) as CLMR uses it: a strided 3-sample conv, then blocks of (3-tap conv,
    BatchNorm, ReLU, 3× max-pool) down to one step: (B, 1, 59049) -> (B, D)."""

    input_kind = "wave"

    def __init__(self, channels: tuple[int, ...]):
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


# the paper's ResNet-50 row (23.5 M parameters, 2048-d); resnet18 (11.2 M, 512-d) and resnet_small
# (1.2 M, 256-d) for CPU runs
RESNETS = ("resnet50", "resnet18", "resnet_small")

SAMPLECNN_PRESETS = {
    "samplecnn": (128, 128, 128, 256, 256, 256, 256, 256, 256, 512),  # CLMR's, 2.4 M parameters
    "samplecnn_small": (32, 32, 32, 64, 64, 64, 64, 64, 64, 128),  # 0.16 M, for CPU runs and tests
}

ENCODERS: dict[str, Callable[[ModelConfig], torch.nn.Module]] = {
    **{name: _swin_builder(name) for name in SWIN_PRESETS},
    **{name: (lambda cfg, name=name: ResNetEncoder(name, cfg.drop_path, input_shape(cfg)[0], cfg.pooling))
       for name in RESNETS},
    **{name: (lambda cfg, name=name: CRNNEncoder(CRNN_PRESETS[name])) for name in CRNN_PRESETS},
    **{name: (lambda cfg, name=name: SampleCNN(SAMPLECNN_PRESETS[name])) for name in SAMPLECNN_PRESETS},
}


def register_encoder(name: str) -> Callable:
    """Decorator: `@register_encoder("mine")` on a `ModelConfig -> nn.Module` builder makes `model.name=mine`
    build it (as `s3t.methods.registry.register_method` adds methods)."""
    def add(builder: Callable[[ModelConfig], torch.nn.Module]) -> Callable[[ModelConfig], torch.nn.Module]:
        ENCODERS[name] = builder
        return builder
    return add


def has_batch_norm(module: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules())


def build_encoder(cfg: ModelConfig) -> torch.nn.Module:
    """The encoder `cfg.name` names; a spectrogram encoder for the inputs `cfg`'s pre-processor makes
    (which must fill them: checked here, with the numbers)."""
    if cfg.name not in ENCODERS:
        raise ValueError(f"unknown encoder {cfg.name!r}; available: {sorted(ENCODERS)}")
    if cfg.pooling != "mean" and cfg.name not in (*SWIN_PRESETS, *RESNETS):
        raise ValueError(f"model.pooling={cfg.pooling} is for Swin and ResNet encoders; {cfg.name} pools its own "
                         "way (mean)")
    encoder = ENCODERS[cfg.name](cfg)
    if encoder.input_kind == "spectrogram":
        check_geometry(cfg.preprocessor, cfg.input_size, cfg.segments)
    return encoder
