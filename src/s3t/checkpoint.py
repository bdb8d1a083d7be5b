"""Checkpoints: written atomically, read without unpickling arbitrary objects."""

from __future__ import annotations

import pickle
import zlib
from pathlib import Path

import torch

from s3t.files import atomic_write


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


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write `state` (tensors, numbers, strings, lists, dicts) to `path` atomically: a reader
    sees the old file or the new one, never a half-written one, even after SIGKILL. The state's
    CRC-32 goes with it, so that loading detects damage."""
    with atomic_write(path) as tmp, open(tmp, "wb") as f:  # a Python file: a full disk is an OSError
        torch.save({**state, "crc32": content_crc32(state)}, f)


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
    expected = state.pop("crc32", None)
    if expected is not None and content_crc32(state) != expected:
        raise CheckpointError(f"{path}: checksum mismatch: the file is damaged (use an older checkpoint)")
    return state
