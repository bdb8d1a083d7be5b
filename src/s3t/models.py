"""Encoders: one contract for every backbone, `(B, 1, H, W) -> (B, D)` with `num_features = D`.

`ENCODERS` maps a name to a builder; the paper's Swin-T and smaller Swins for CPU runs are
timm's public `SwinTransformer`. Geometry (input size vs patch, window and merging) is
checked when a model is built, with the numbers in the error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from timm.models.swin_transformer import SwinTransformer

from s3t.config import ModelConfig


@dataclass(frozen=True)
class SwinPreset:
    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    patch_size: int = 4
    window_size: int = 8


SWIN_PRESETS = {
    "swin_t": SwinPreset(96, (2, 2, 6, 2), (3, 6, 12, 24)),  # the paper's Swin-T, 27.5 M parameters
    # 5.1 M; 8 × 8 patches (4× fewer tokens than Swin-T's 4 × 4) for pre-training on CPU
    "swin_mini": SwinPreset(48, (2, 2, 2, 2), (2, 4, 8, 16), patch_size=8),
    "swin_nano": SwinPreset(24, (1, 1, 1, 1), (1, 2, 4, 8)),  # 0.7 M: tests
}


def check_swin_geometry(size: int, preset: SwinPreset) -> None:
    """Every stage's token grid must tile into whole windows; raise ValueError with the numbers."""
    if size % preset.patch_size:
        raise ValueError(f"input size {size} is not a multiple of the patch size {preset.patch_size}")
    grid = size // preset.patch_size
    for stage in range(len(preset.depths)):
        if stage and grid % 2:
            raise ValueError(f"input size {size}: stage {stage} cannot merge an odd {grid}×{grid} token grid")
        grid = grid // 2 if stage else grid
        if grid % preset.window_size and grid > preset.window_size:
            raise ValueError(f"input size {size}: stage {stage} has a {grid}×{grid} token grid "
                             f"({size} / patch {preset.patch_size} / 2^{stage}), not a multiple of the window "
                             f"size {preset.window_size}")


class SwinEncoder(torch.nn.Module):
    """timm SwinTransformer on one-channel spectrogram images, pooled: (B, 1, S, S) -> (B, D)."""

    def __init__(self, size: int, preset: SwinPreset, drop_path: float, freeze_patch_embed: bool = False):
        super().__init__()
        check_swin_geometry(size, preset)
        self.size = size
        self.swin = SwinTransformer(
            img_size=size, patch_size=preset.patch_size, in_chans=1, num_classes=0,
            embed_dim=preset.embed_dim, depths=preset.depths, num_heads=preset.num_heads,
            window_size=preset.window_size, drop_path_rate=drop_path,
        )
        self.swin.patch_embed.requires_grad_(not freeze_patch_embed)
        self.num_features = self.swin.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1:] != (1, self.size, self.size):
            raise ValueError(f"expected input (B, 1, {self.size}, {self.size}), got {tuple(x.shape)}")
        return self.swin(x)  # (B, D)


def _swin_builder(name: str) -> Callable[[ModelConfig], torch.nn.Module]:
    return lambda cfg: SwinEncoder(cfg.input_size, SWIN_PRESETS[name], cfg.drop_path, cfg.freeze_patch_embed)


ENCODERS: dict[str, Callable[[ModelConfig], torch.nn.Module]] = {
    name: _swin_builder(name) for name in SWIN_PRESETS
}


def build_encoder(cfg: ModelConfig) -> torch.nn.Module:
    """The encoder `cfg.name` names, for `cfg.input_size` square inputs."""
    if cfg.name not in ENCODERS:
        raise ValueError(f"unknown encoder {cfg.name!r}; available: {sorted(ENCODERS)}")
    return ENCODERS[cfg.name](cfg)
