"""Training methods: what the engine (`s3t.engine`) trains, and the registry that names them.

A method is an `nn.Module` that holds its encoder(s) under the contract of `s3t.models`, with

- `encoder`: the backbone that checkpoints store under their own key and `load_encoder` returns;
- `forward(batch, gen) -> (loss, stats)`: one training step's loss (a scalar tensor) from a batch
  of its dataset, with `gen` the step's augmentation generator; `stats` maps each of
  `stat_names` to a float (logged beside the loss);
- `after_step()`: called after each optimiser step (MoCo's momentum update of its key encoder);
- `check_batch(global_batch, items)`: refuse a batch size the method cannot train with.

Self-supervised methods register a builder `Config -> Method` under the name `train.method`
selects (`register_method`); supervised training builds its method from the labels it is given.
"""

from __future__ import annotations

import importlib
from typing import Callable

import torch

from s3t import augment
from s3t.config import Config
from s3t.preprocess import model_input


class Method(torch.nn.Module):
    name = "method"
    stat_names: tuple[str, ...] = ()
    encoder: torch.nn.Module

    def forward(self, batch, gen: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after every optimiser step that was taken."""

    def check_batch(self, global_batch: int, items: int) -> None:
        """Raise ValueError if this method cannot train on `items` items in global batches of `global_batch`."""


def spectrogram_views(views: torch.Tensor, cfg: Config, gen: torch.Generator) -> torch.Tensor:
    """Two log-CQT crops per item (B, 2, 84, T), augmented and pre-processed: (B, 2, 1, S, S) model inputs."""
    x = model_input(augment.augment_views(views, cfg.augment, gen).flatten(0, 1), cfg.model)
    return x.unflatten(0, (views.shape[0], 2))


METHODS: dict[str, Callable[[Config], Method]] = {}

# modules whose methods register themselves on import: imported before a name is looked up
_BUILT_IN = ("s3t.moco", "s3t.clmr")


def register_method(name: str) -> Callable:
    """Decorator: `@register_method("byol")` on a `Config -> Method` builder makes `train.method=byol` train it."""
    def add(builder: Callable[[Config], Method]) -> Callable[[Config], Method]:
        METHODS[name] = builder
        return builder
    return add


def build_method(cfg: Config) -> Method:
    """The method `cfg.train.method` names, built from `cfg`."""
    for module in _BUILT_IN:
        importlib.import_module(module)
    if cfg.train.method not in METHODS:
        raise ValueError(f"train.method: unknown method {cfg.train.method!r}; available: {sorted(METHODS)}")
    return METHODS[cfg.train.method](cfg)
