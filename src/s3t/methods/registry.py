"""The methods `train.method` names: a dict of builders `Config -> Method`, the built-in ones
listed here, a plugin's added by `register_method` (as `s3t.models.backbones.register_encoder` adds encoders)."""

from __future__ import annotations

from typing import Callable

from s3t.config.schema import Config
from s3t.methods.base import Method
from s3t.methods.moco import build_moco
from s3t.methods.simclr import build_simclr

METHODS: dict[str, Callable[[Config], Method]] = {"moco": build_moco, "simclr": build_simclr}


def register_method(name: str) -> Callable:
    """Decorator: `@register_method("byol")` on a `Config -> Method` builder makes `train.method=byol` train it."""
    def add(builder: Callable[[Config], Method]) -> Callable[[Config], Method]:
        METHODS[name] = builder
        return builder
    return add


def build_method(cfg: Config) -> Method:
    """The method `cfg.train.method` names, built from `cfg`."""
    if cfg.train.method not in METHODS:
        raise ValueError(f"train.method: unknown method {cfg.train.method!r}; available: {sorted(METHODS)}")
    return METHODS[cfg.train.method](cfg)
