"""Swin encoders: timm's `SwinTransformer` on one-channel spectrograms, (B, 1, H, W) -> (B, D).

The input is the square time-folded image (H = W = `model.input_size`) or the native CQT
(`model.preprocessor=native`: 84 bins padded to 96 rows, W frames). The preset names the layer that
turns the image into tokens, handed to timm as its `embed_layer`:

- "patch": the paper's strided patch projection;
- "conv": a convolutional stem (Xiao et al. 2021, "Early Convolutions Help Transformers See Better"):
  3×3 stride-2 convolutions with BatchNorm and ReLU down to the patch grid, then a 1×1 projection;
- "resnet": a hybrid (as ViT's R50+ViT): `resnet_small`'s stem and first stages (two for patch size 8,
  three for 16, all four for 32), then a 1×1 projection, so the Swin stages start from residual
  time-frequency features. At patch size 16 the Swin stages take the place of the ResNet's last stage (as
  BoTNet's attention does, Srinivas et al. 2021), at the ResNet's output stride of 32; at 32 they follow it.
  "resnet18": the same with resnet18's body, for the GPU-sized hybrid.

Geometry is checked when a model is built, with the numbers in the error.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from timm.layers import PatchEmbed
from timm.models.resnet import BasicBlock, ResNet
from timm.models.swin_transformer import SwinTransformer

from s3t.models.pooling import pool_valid, valid_cells


@dataclass(frozen=True)
class SwinPreset:
    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    patch_size: int = 4
    window_size: tuple[int, int] = (8, 8)  # (frequency, time) tokens
    stem: str = "patch"
    zero_init: bool = False  # each block's residual branches start at zero: the stages start as the identity


SWIN_PRESETS = {
    "swin_t": SwinPreset(96, (2, 2, 6, 2), (3, 6, 12, 24)),  # the paper's Swin-T, 27.5 M parameters
    # 5.1 M; 8 × 8 patches (4× fewer tokens than Swin-T's 4 × 4) for pre-training on CPU
    "swin_mini": SwinPreset(48, (2, 2, 2, 2), (2, 4, 8, 16), patch_size=8),
    "swin_nano": SwinPreset(24, (1, 1, 1, 1), (1, 2, 4, 8)),  # 0.7 M: tests
    # issue 27's remedies, each on swin_mini's token grid
    "swin_mini_conv": SwinPreset(48, (2, 2, 2, 2), (2, 4, 8, 16), patch_size=8, stem="conv"),
    "swin_mini_hybrid": SwinPreset(48, (2, 2, 2, 2), (2, 4, 8, 16), patch_size=8, stem="resnet"),
    # resnet_small's stem and stages 1–3 (stride 16), then two Swin stages at strides 16 and 32 (2.5 M)
    "swin_hybrid16": SwinPreset(128, (2, 2), (4, 8), patch_size=16, stem="resnet"),
    # the whole resnet_small (stride 32), then one Swin stage whose 8 × 8 window spans the map (no shift),
    # starting as the identity: attention with Swin's relative position bias added to the CPU recipe (2.89 M)
    "swin_hybrid32": SwinPreset(256, (2,), (8,), patch_size=32, stem="resnet", zero_init=True),
    # for model.preprocessor=native at 768 frames: a 12 × 96 grid, windows that never straddle a fold
    # (three stages: a fourth would merge an odd 3-row grid; 5.4 M parameters, as swin_mini's 5.1 M)
    "swin_mini_native": SwinPreset(64, (2, 2, 6), (2, 4, 8), patch_size=8, window_size=(6, 12), stem="conv"),
    "swin_t_conv": SwinPreset(96, (2, 2, 6, 2), (3, 6, 12, 24), stem="conv"),  # the GPU-sized conv stem
    # the GPU-sized hybrids: the resnet stem, then Swin-T's own stages from its stride on (2–4, or 3–4)
    "swin_t_hybrid": SwinPreset(192, (2, 6, 2), (6, 12, 24), patch_size=8, stem="resnet"),
    "swin_t_hybrid16": SwinPreset(384, (6, 2), (12, 24), patch_size=16, stem="resnet"),
    # swin_hybrid32 at Swin-T's size: resnet18's body, then a 768-wide Swin stage (25.8 M parameters)
    "swin_t_hybrid32": SwinPreset(768, (2,), (24,), patch_size=32, stem="resnet18", zero_init=True),
}


def check_swin_geometry(shape: int | tuple[int, int], preset: SwinPreset) -> None:
    """Every stage's token grid must tile into whole windows (or fit in one) and merge evenly;
    raise ValueError with the numbers."""
    shape = (shape, shape) if isinstance(shape, int) else tuple(shape)
    for axis, size in enumerate(shape):
        if size % preset.patch_size:
            raise ValueError(f"input size {size} is not a multiple of the patch size {preset.patch_size}")
        grid, window = size // preset.patch_size, preset.window_size[axis]
        for stage in range(len(preset.depths)):
            if stage and grid % 2:
                raise ValueError(f"input size {size}: stage {stage} cannot merge an odd {grid}-token "
                                 f"{'time' if axis else 'frequency'} axis of the grid")
            grid = grid // 2 if stage else grid
            if grid % window and grid > window:
                raise ValueError(f"input size {size}: stage {stage} has a {grid}-token grid axis ({size} / patch "
                                 f"{preset.patch_size} / 2^{stage}), not a multiple of the window size {window}")


class _Stem(torch.nn.Module):
    """What timm's `embed_layer` must be: (B, 1, H, W) -> (B, H/p, W/p, C) tokens, with `grid_size`."""

    def __init__(self, body: torch.nn.Module, width: int, img_size: tuple[int, int], patch_size: int, embed_dim: int,
                 norm_layer):
        super().__init__()
        self.body, self.proj = body, torch.nn.Conv2d(width, embed_dim, 1)
        self.norm = norm_layer(embed_dim) if norm_layer else torch.nn.Identity()
        self.img_size, self.patch_size = img_size, (patch_size, patch_size)
        self.grid_size = (img_size[0] // patch_size, img_size[1] // patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(self.body(x)).permute(0, 2, 3, 1))


def conv_stem(img_size, patch_size, in_chans, embed_dim, norm_layer=None, **_) -> _Stem:
    """log2(patch) stride-2 3×3 convolutions, widths doubling up to `embed_dim`."""
    steps = int(math.log2(patch_size))
    widths = [max(8, embed_dim >> (steps - 1 - i)) for i in range(steps)]
    layers, c_in = [], in_chans
    for c in widths:
        layers += [torch.nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=False), torch.nn.BatchNorm2d(c),
                   torch.nn.ReLU(inplace=True)]
        c_in = c
    return _Stem(torch.nn.Sequential(*layers), c_in, img_size, patch_size, embed_dim, norm_layer)


RESNET_STAGES = {8: 2, 16: 3, 32: 4}  # patch size (stride): ResNet stages the stem takes
RESNET_BODIES = {"resnet_small": ((1, 1, 1, 1), (32, 64, 128, 256)),  # blocks and widths per stage
                 "resnet18": ((2, 2, 2, 2), (64, 128, 256, 512))}


def resnet_stem(img_size, patch_size, in_chans, embed_dim, norm_layer=None, body: str = "resnet_small",
                **_) -> _Stem:
    """A ResNet's stem and stages 1–2 (stride 8), 1–3 (stride 16) or all four (stride 32): resnet_small's
    (64, 128 or 256 channels out) or, for the GPU-sized hybrid, resnet18's (twice as wide, twice as deep)."""
    if patch_size not in RESNET_STAGES:
        raise ValueError(f"the resnet stem has stride 8, 16 or 32, not patch size {patch_size}")
    depths, widths = RESNET_BODIES[body]
    net = ResNet(BasicBlock, depths, channels=widths, stem_width=widths[0], in_chans=in_chans,
                 num_classes=0, zero_init_last=False)
    stages = [net.layer1, net.layer2, net.layer3, net.layer4][: RESNET_STAGES[patch_size]]
    layers = torch.nn.Sequential(net.conv1, net.bn1, net.act1, net.maxpool, *stages)
    return _Stem(layers, widths[len(stages) - 1], img_size, patch_size, embed_dim, norm_layer)


EMBED_LAYERS = {"patch": PatchEmbed, "conv": conv_stem, "resnet": resnet_stem,
                "resnet18": functools.partial(resnet_stem, body="resnet18")}


class SwinEncoder(torch.nn.Module):
    """timm SwinTransformer on one-channel spectrogram images, pooled: (B, 1, H, W) -> (B, D)."""

    input_kind = "spectrogram"

    def __init__(self, shape: int | tuple[int, int], preset: SwinPreset, drop_path: float,
                 freeze_patch_embed: bool = False, pooling: str = "mean"):
        super().__init__()
        self.shape = (shape, shape) if isinstance(shape, int) else tuple(shape)
        check_swin_geometry(self.shape, preset)
        self.pooling = pooling
        self.swin = SwinTransformer(
            img_size=self.shape, patch_size=preset.patch_size, in_chans=1, num_classes=0,
            embed_dim=preset.embed_dim, depths=preset.depths, num_heads=preset.num_heads,
            window_size=preset.window_size, drop_path_rate=drop_path, embed_layer=EMBED_LAYERS[preset.stem],
        )
        self.swin.patch_embed.requires_grad_(not freeze_patch_embed)
        if preset.zero_init:
            _zero_residual_branches(self.swin)
        rows = self.shape[0] // preset.patch_size // 2 ** (len(preset.depths) - 1)  # of the last stage's grid
        if pooling == "stages":
            self.num_features = sum(stage["num_chs"] for stage in self.swin.feature_info)
        else:
            self.num_features = self.swin.num_features * {"mean": 1, "rows": rows, "rows_stats": 2 * rows}[pooling]

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """`valid` (B, 1, H, W), True where the input holds the clip: pool over those tokens only."""
        if x.shape[1:] != (1, *self.shape):
            raise ValueError(f"expected input (B, 1, {self.shape[0]}, {self.shape[1]}), got {tuple(x.shape)}")
        if valid is not None:
            tokens = self.swin.forward_features(x)  # (B, rows, columns, C)
            weight = valid_cells(valid, tokens.shape[1:3]).permute(0, 2, 3, 1)
            return pool_valid(tokens, weight, self.pooling, 2, (1, 2))
        if self.pooling == "mean":
            return self.swin(x)  # (B, D)
        if self.pooling == "stages":
            return self._stage_means(x)
        tokens = self.swin.forward_features(x)  # (B, rows, columns, C): rows follow frequency
        if self.pooling == "rows":
            return tokens.mean(2).flatten(1)  # (B, rows · C)
        return torch.cat([tokens.mean(2).flatten(1), tokens.std(2).flatten(1)], 1)  # (B, 2 · rows · C)

    def _stage_means(self, x: torch.Tensor) -> torch.Tensor:
        """Each stage's tokens averaged over frequency and time, concatenated: (B, Σ stage widths);
        the last stage after the final norm, so its part is the paper's mean-pooled feature."""
        tokens, means = self.swin.patch_embed(x), []  # (B, rows, columns, C), as timm's stages take them
        for i, stage in enumerate(self.swin.layers):
            tokens = stage(tokens)
            means.append((self.swin.norm(tokens) if i == len(self.swin.layers) - 1 else tokens).mean((1, 2)))
        return torch.cat(means, 1)


def _zero_residual_branches(swin: SwinTransformer) -> None:
    """Zero each block's last projections (attention and MLP), so every block starts as the identity
    (as SkipInit, De & Smith 2020) and the stage passes its input's features on until it learns."""
    for stage in swin.layers:
        for block in stage.blocks:
            for layer in (block.attn.proj, block.mlp.fc2):
                torch.nn.init.zeros_(layer.weight)
                torch.nn.init.zeros_(layer.bias)


def fuse_attention(module: torch.nn.Module) -> int:
    """Switch every timm attention block in `module` to PyTorch's fused scaled-dot-product attention
    (off by default in timm's Swin); the same function of the same weights. Returns how many."""
    blocks = [m for m in module.modules() if hasattr(m, "fused_attn")]
    for m in blocks:
        m.fused_attn = True
    return len(blocks)
