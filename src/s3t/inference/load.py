"""Frozen encoders from what training leaves: a checkpoint (any method's) or a folder `s3t export`
wrote (no pickle read), and the encoder a command asks for (`--checkpoint`, `--encoder random|cqt-stats`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from s3t.config.loading import ConfigError, load_config
from s3t.config.schema import Config
from s3t.inference.encoders import CqtStatsEncoder, Encoder, WaveEncoder, random_encoder
from s3t.io.checkpoint import load_checkpoint
from s3t.io.export_folder import read_export, saved_config
from s3t.models.backbones import build_encoder

# what may change on trained weights: none of them holds any
READOUT_KEYS = ("model.readout", "model.embedding", "model.short")
# The starter weights the package ships (`cpu-small` on the 15-h Debian corpus, seed 0; data/starter/build.sh)
STARTER = Path(__file__).resolve().parents[1] / "pretrained" / "cpu-small"


def load_encoder(path: str | Path | None = None, device: str | torch.device = "cpu",
                 readout: Sequence[str] = ()) -> Encoder:
    """The encoder of a training checkpoint (any method's: `s3t pretrain`, `s3t clmr`, `s3t supervised`),
    or of a folder `s3t export` wrote, frozen, with its input pipeline; none: the starter weights.
    `readout` overrides (`model.readout=rows`, `model.embedding=windows`) read the same weights another way."""
    path = STARTER if path is None else path
    if Path(path).is_dir():
        return from_pretrained(path, device, readout)
    ckpt = load_checkpoint(path)
    return encoder_of(ckpt["config"], ckpt["encoder"], ckpt["cache_meta"], str(path), device, readout)


def encoder_of(config: dict, weights: dict, cache_meta: dict, name: str, device: str | torch.device = "cpu",
               readout: Sequence[str] = ()) -> Encoder:
    """The frozen encoder that `config` builds, holding `weights`, for inputs prepared as `cache_meta` says."""
    fixed = [o for o in readout if o.split("=", 1)[0].strip() not in READOUT_KEYS]
    if fixed:
        raise ConfigError(f"--set {' '.join(fixed)}: a trained encoder's model comes with its weights; only "
                          f"{', '.join(READOUT_KEYS)} can be set")
    cfg = load_config(overrides=readout, base=config)
    backbone = build_encoder(cfg.model)
    backbone.load_state_dict(weights)
    if backbone.input_kind == "wave":
        return WaveEncoder(backbone, cfg.model, name=name).to(device)
    compression = int(cache_meta.get("time_compression", 1))
    return Encoder(backbone, cfg.model, compression, name=name).to(device)


def from_pretrained(path_or_repo: str | Path = STARTER, device: str = "cpu", readout: Sequence[str] = ()) -> Encoder:
    """The frozen encoder of an exported folder (or a Hugging Face Hub repo id holding one; by default the
    starter weights), checked against tampering; no pickle is read. `readout`: as `load_encoder` takes it."""
    record, tensors = read_export(path_or_repo)
    return encoder_of(record["config"], tensors, record["cache_meta"], str(path_or_repo), device, readout)


@dataclass(frozen=True)
class EncoderChoice:
    """The encoder a command names: `--checkpoint` (any method's, or an export), or `--encoder random|cqt-stats`
    with the model of `configs` and `overrides`. A checkpoint's model comes with it: of `overrides`, only its
    `model.*` ones apply (how the weights are read out)."""

    checkpoint: str | None = None
    kind: str = "random"
    configs: Sequence[str] = ()
    overrides: Sequence[str] = ()
    time_compression: int = 1  # of the cache a random or cqt-stats encoder reads (a checkpoint knows its own)
    device: str = "cpu"

    def load(self) -> Encoder:
        if self.checkpoint:
            return load_encoder(self.checkpoint, self.device, [o for o in self.overrides if o.startswith("model.")])
        if self.kind == "cqt-stats":
            return CqtStatsEncoder(self.time_compression)
        cfg = load_config(self.configs, self.overrides)
        return random_encoder(cfg.model, seed=cfg.train.seed, time_compression=self.time_compression,
                              device=self.device)

    def config(self) -> Config:
        """The settings to evaluate it with: a checkpoint's own come first (a recipe carries its probe),
        then `configs` and `overrides`."""
        return load_config(self.configs, self.overrides, base=saved_config(self.checkpoint) if self.checkpoint else None)
