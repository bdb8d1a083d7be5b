"""Result files: written whole or not at all; a full disk is a StorageError that keeps what was written."""

import errno
import json

import numpy as np
import pytest

from s3t.io.files import (
    StorageError,
    append_csv_row,
    atomic_write,
    create_memmap,
    write_json,
    write_text,
)


def test_atomic_write_replaces_the_file_whole_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"top1": 0.5})
    write_json(target, {"top1": 0.75}, indent=1)
    assert json.loads(target.read_text()) == {"top1": 0.75}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_failure_inside_the_block_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "tables.md"
    write_text(target, "old")
    with pytest.raises(KeyError):
        with atomic_write(target) as tmp:
            tmp.write_text("half of the new")
            raise KeyError("crash while writing")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["tables.md"]


def test_the_temporary_keeps_the_suffix_numpy_looks_for(tmp_path):
    with atomic_write(tmp_path / "features.npy") as tmp:
        assert tmp.suffix == ".npy"
        np.save(tmp, np.arange(3))
    assert np.load(tmp_path / "features.npy").tolist() == [0, 1, 2]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EFBIG])
def test_running_out_of_space_is_a_storage_error_naming_the_file(tmp_path, code):
    target = tmp_path / "last.pt"
    write_text(target, "the last good checkpoint")
    with pytest.raises(StorageError, match=r"cannot write .*last\.pt: .*Files written before are intact"):
        with atomic_write(target):
            try:
                raise OSError(code, "no space")
            except OSError as e:  # torch.save re-raises it as a RuntimeError, the cause kept
                raise RuntimeError("PytorchStreamWriter failed") from e
    assert target.read_text() == "the last good checkpoint"


def test_other_os_errors_pass_through_unchanged(tmp_path):
    with pytest.raises(PermissionError):
        with atomic_write(tmp_path / "x.json"):
            raise PermissionError(errno.EACCES, "denied")


def test_csv_rows_get_one_header_and_floats_at_six_digits(tmp_path):
    log = tmp_path / "log.csv"
    append_csv_row(log, ["step", "loss"], [1, 2.0 / 3.0])
    append_csv_row(log, ["step", "loss"], [2, 0.5])
    assert log.read_text().splitlines() == ["step,loss", "1,0.666667", "2,0.5"]


def test_memmap_is_zero_filled_with_its_blocks_reserved(tmp_path):
    array = create_memmap(tmp_path / "f.npy", (3, 4))
    assert array.shape == (3, 4) and array.dtype == np.float32 and not array.any()
    array[1] = 7.0
    array.flush()
    del array
    assert np.load(tmp_path / "f.npy")[1].tolist() == [7.0] * 4
    stat = (tmp_path / "f.npy").stat()
    assert stat.st_blocks * 512 >= stat.st_size  # allocated, not sparse
