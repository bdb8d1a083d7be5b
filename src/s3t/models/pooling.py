"""Pooling over the cells of a feature map that hold the input, not its padding (issue 28's `model.short=valid`).

`valid` is the input image's mask (B, 1, H, W), True where a pixel comes from the clip; a cell of the
downsampled map is valid when any pixel under it is, so a sound of a single frame still has one.
"""

from __future__ import annotations

import torch


def valid_cells(valid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 1, H, W) input mask -> (B, 1, rows, columns) float 0/1 mask of a map of `size`."""
    return torch.nn.functional.adaptive_max_pool2d(valid.float(), size)


def masked_mean(x: torch.Tensor, weight: torch.Tensor, dims: tuple[int, ...], keepdim: bool = False) -> torch.Tensor:
    """The mean of x over `dims`, counting the cells where the (broadcastable) 0/1 weight is 1; 0 where none is."""
    return (x * weight).sum(dims, keepdim) / weight.sum(dims, keepdim).clamp_min(1)


def masked_std(x: torch.Tensor, weight: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """torch.std (unbiased) of x over `dims` on the cells where weight is 1; 0 with fewer than two."""
    mean = masked_mean(x, weight, dims, keepdim=True)
    var = (weight * (x - mean) ** 2).sum(dims) / (weight.sum(dims) - 1).clamp_min(1)
    return var.sqrt()


def pool_valid(x: torch.Tensor, weight: torch.Tensor, pooling: str, time_dim: int,
               map_dims: tuple[int, int]) -> torch.Tensor:
    """A feature map pooled as `model.pooling` says (mean, rows, rows_stats), over its valid cells only:
    `map_dims` are its (frequency, time) axes, `weight` the cells' mask broadcast to it."""
    if pooling == "mean":
        return masked_mean(x, weight, map_dims)
    if pooling not in ("rows", "rows_stats"):
        raise ValueError(f"model.short=valid reads the mean, rows and rows_stats poolings, not {pooling}")
    rows = masked_mean(x, weight, (time_dim,)).flatten(1)
    if pooling == "rows":
        return rows
    return torch.cat([rows, masked_std(x, weight, (time_dim,)).flatten(1)], 1)
