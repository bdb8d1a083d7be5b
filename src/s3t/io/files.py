"""Writing results so that a crash or a full disk never leaves a half-written file in their place."""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

# A full disk, a quota, or a file-size limit: the run cannot go on until the user frees space.
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class StorageError(Exception):
    """A result could not be written for lack of space; what was written before is intact."""


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write to; when the block ends, the temporary is
    fsync'd and renamed over `path`. A reader sees the old file or the new one, never a part.
    On any failure the temporary is removed; running out of space becomes a `StorageError`."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp{path.suffix}")  # keeps the suffix numpy looks for
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        cause = _space_error(e)
        if cause is not None:
            raise no_space(path, cause) from None
        raise


def _space_error(error: BaseException | None) -> OSError | None:
    """The out-of-space OSError behind `error`, if any: torch.save, for one, turns it into a
    RuntimeError raised while handling it."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in _NO_SPACE:
            return error
        error = error.__cause__ or error.__context__
    return None


def no_space(path: str | Path, error: OSError) -> StorageError:
    return StorageError(f"cannot write {path}: {os.strerror(error.errno)}. Files written before are intact; "
                        f"free some space and run the same command again to continue")


def append_csv_row(path: str | Path, header: list[str], row: list) -> None:
    """Append one row to a CSV log (floats to 6 significant digits), writing the header first
    into a new file. A row cut short by a crash is for the reader to drop."""
    new = not Path(path).exists()
    with open(path, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(header)
        writer.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in row])


def write_text(path: str | Path, text: str) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj, **kwargs) -> None:
    write_text(path, json.dumps(obj, **kwargs))


def create_memmap(path: str | Path, shape: tuple[int, ...], dtype=np.float32) -> np.memmap:
    """A zero-filled .npy opened for writing, its blocks reserved now: writing into the pages of a
    sparse file on a full disk kills the process with SIGBUS, running out of space here is an error."""
    try:
        array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        with open(path, "rb+") as f:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        return array
    except OSError as e:
        if _space_error(e):
            raise no_space(path, e) from None
        raise
