"""Checkpoints: one schema for every training, written atomically, read without unpickling arbitrary objects.

A training checkpoint (`last.pt`, `epochNNNN.pt`, `best.pt`, whatever method wrote it) is a dict:

| key | holds |
| --- | --- |
| `format` | the schema version, `FORMAT` |
| `s3t_version` | the package version that wrote it |
| `method` | the method's registered name (`moco`, `simclr`, `supervised`, …) |
| `config` | the run's resolved config, as a plain dict |
| `encoder` | the encoder's state dict, unprefixed: `load_encoder` builds `config.model` and loads it |
| `method_state` | the rest of the method's state dict (heads, key encoder, queue …) |
| `optimizer` | the optimiser's state dict |
| `progress` | `{"step", "epoch", "best", "elapsed"}`: where the run stands (elapsed: seconds trained) |
| `cache_meta` | the meta of the cache it trained on (time compression, clip length …) |
| `meta` | what the run describes itself by (a supervised run's classes and dataset) |

Checkpoints written before the schema (format 0: everything under `model`) are upgraded on load.
"""

from __future__ import annotations

import pickle
import zlib
from pathlib import Path

import torch

from s3t.io.files import atomic_write
from s3t.version import __version__

FORMAT = 1
SCHEMA = {"format": int, "s3t_version": str, "method": str, "config": dict, "encoder": dict, "method_state": dict,
          "optimizer": dict, "progress": dict, "cache_meta": dict, "meta": dict}


class CheckpointError(Exception):
    """A checkpoint that is missing, truncated, corrupt, or holds objects we refuse to unpickle."""


def content_crc32(obj, crc: int = 0) -> int:
    """CRC-32 over everything in a checkpoint's state, tensors byte by byte: torch.load does not
    notice a flipped bit inside tensor data, this does."""
    if isinstance(obj, dict):
        for key in sorted(obj, key=str):
            crc = content_crc32(obj[key], zlib.crc32(repr(key).encode(), crc))
        return crc
    if isinstance(obj, (list, tuple)):
        for value in obj:
            crc = content_crc32(value, crc)
        return crc
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        crc = zlib.crc32(f"{t.dtype}{tuple(t.shape)}".encode(), crc)
        return zlib.crc32(t.reshape(-1).view(torch.uint8).numpy().tobytes(), crc)
    return zlib.crc32(repr(obj).encode(), crc)


def checkpoint_bytes(method: torch.nn.Module, opt: torch.optim.Optimizer) -> int:
    """About the size of one checkpoint of `method` trained by `opt`: its state and, for an optimiser
    yet to take its first step, Adam's two moments per trainable parameter."""
    size = sum(t.numel() * t.element_size() for t in method.state_dict().values())
    moments = [v for state in opt.state.values() for v in state.values() if isinstance(v, torch.Tensor)]
    if moments:
        return size + sum(t.numel() * t.element_size() for t in moments)
    return size + 2 * sum(p.numel() * p.element_size() for g in opt.param_groups for p in g["params"])


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write `state` (tensors, numbers, strings, lists, dicts) to `path` atomically: a reader
    sees the old file or the new one, never a half-written one, even after SIGKILL. The state's
    CRC-32 goes with it, so that loading detects damage."""
    with atomic_write(path) as tmp, open(tmp, "wb") as f:  # a Python file: a full disk is an OSError
        torch.save({**state, "crc32": content_crc32(state)}, f)


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load any file `save_checkpoint` wrote with `weights_only=True` (code hidden in a pickle never
    runs), checking its CRC-32."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: refused to load: it holds objects other than weights and plain data "
                              f"({str(e).splitlines()[0]})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: damaged or not a checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not an S3T checkpoint (a {type(state).__name__}, not a dict)")
    expected = state.pop("crc32", None)
    if expected is not None and content_crc32(state) != expected:
        raise CheckpointError(f"{path}: checksum mismatch: the file is damaged (use an older checkpoint)")
    return state


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """A training checkpoint, validated against the schema (older ones upgraded to it)."""
    state = read_checkpoint(path, map_location)
    if "format" not in state and "model" in state and "config" in state:
        state = _upgrade_format0(state)
    problems = [f"'{k}' missing" if k not in state else f"'{k}' is a {type(state[k]).__name__}, not a {t.__name__}"
                for k, t in SCHEMA.items() if not isinstance(state.get(k), t)]
    if not problems and state["format"] > FORMAT:
        problems = [f"format {state['format']} is newer than this version of s3t reads ({FORMAT})"]
    if not problems and not {"step", "epoch"} <= set(state["progress"]):
        problems = ["'progress' lacks 'step' or 'epoch'"]
    if problems:
        raise CheckpointError(f"{path}: not an S3T training checkpoint: {'; '.join(problems)} "
                              f"(expected keys: {', '.join(SCHEMA)})")
    return state


def training_state(method: torch.nn.Module, opt: torch.optim.Optimizer, cfg, progress: dict, cache_meta: dict,
                   meta: dict) -> dict:
    """The checkpoint of a method being trained (see the module's table)."""
    return {"format": FORMAT, "s3t_version": __version__, "method": method.name, "config": cfg.to_dict(),
            "encoder": method.encoder.state_dict(),
            "method_state": {k: v for k, v in method.state_dict().items() if not k.startswith("encoder.")},
            "optimizer": opt.state_dict(), "progress": dict(progress), "cache_meta": dict(cache_meta),
            "meta": dict(meta)}


def restore_method(method: torch.nn.Module, state: dict) -> None:
    """Load a checkpoint's encoder and method state into `method` (every key must match)."""
    method.load_state_dict({**{f"encoder.{k}": v for k, v in state["encoder"].items()}, **state["method_state"]})


def _upgrade_format0(state: dict) -> dict:
    """A checkpoint from before the schema: MoCo's and CLMR's kept the query encoder under `model` with
    the prefix `encoder_q.`; supervised last.pt kept the bare encoder under `model` and its head apart."""
    model = state["model"]
    if any(k.startswith("encoder_q.") for k in model):
        encoder = {k[len("encoder_q."):]: v for k, v in model.items() if k.startswith("encoder_q.")}
        rest = {k: v for k, v in model.items() if not k.startswith("encoder_q.")}
    else:
        encoder, rest = model, {}
    if "head" in state:
        method, rest = "supervised", {f"head.{k}": v for k, v in state["head"].items()}
    elif "clmr" in state:
        method, rest = "simclr", {k: v for k, v in state["clmr"].items() if not k.startswith("encoder.")}
    else:
        method = "moco"
    return {"format": 0, "s3t_version": str(state.get("version", "")), "method": method, "config": state["config"],
            "encoder": encoder, "method_state": rest, "optimizer": state.get("optimizer", {}),
            "progress": {"step": state.get("step", 0), "epoch": state.get("epoch", 0),
                         "best": state.get("best", float("-inf"))},
            "cache_meta": state.get("cache_meta", {}),
            "meta": {k: state[k] for k in ("classes", "dataset") if k in state}}
