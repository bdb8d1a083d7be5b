"""Heads on an encoder's features: the projection MLP of the contrastive methods."""

from __future__ import annotations

import torch


def projection_head(in_dim: int, hidden_dim: int, out_dim: int, layers: int) -> torch.nn.Sequential:
    """MLP of `layers` linear layers with ReLU between: in_dim -> hidden_dim … -> out_dim."""
    if layers < 1:
        raise ValueError(f"moco.mlp_layers must be >= 1, got {layers}")
    dims = [in_dim] + [hidden_dim] * (layers - 1) + [out_dim]
    modules: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(dims, dims[1:])):
        modules.append(torch.nn.Linear(a, b))
        if i < layers - 1:
            modules.append(torch.nn.ReLU(inplace=True))
    return torch.nn.Sequential(*modules)
