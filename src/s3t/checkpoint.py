"""Checkpoints: written atomically, read without unpickling arbitrary objects."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch


class CheckpointError(Exception):
    """A checkpoint that is missing, truncated, corrupt, or holds objects we refuse to unpickle."""


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write `state` (tensors, numbers, strings, lists, dicts) to `path` atomically: a reader
    sees the old file or the new one, never a half-written one, even after SIGKILL."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with `weights_only=True`: code hidden in a pickle never runs."""
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
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CheckpointError(f"{path}: not an S3T checkpoint (expected keys 'model' and 'config')")
    return state
