"""Rank-dependent behaviour of the engine in real two-process gloo runs under torchrun:
each rank draws its own augmentations, and a non-finite loss on one rank is met by all."""

import json
import os
import subprocess
import sys
from pathlib import Path

WORKER = Path(__file__).parent / "ddp_worker.py"


def _run(out: Path, nan_policy: str, nan_step: int, processes: int) -> subprocess.CompletedProcess:
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)] if processes > 1 else []
    cmd = [sys.executable, *launcher, str(WORKER), str(out), nan_policy, str(nan_step)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)


def _rank(out: Path, r: int) -> dict:
    return json.loads((out / f"rank{r}.json").read_text())


def test_each_rank_draws_its_own_augmentations_and_a_nan_on_one_rank_skips_the_step_on_all(tmp_path):
    result = _run(tmp_path / "two", "skip", 1, processes=2)
    assert result.returncode == 0, result.stderr[-3000:]
    r0, r1 = _rank(tmp_path / "two", 0), _rank(tmp_path / "two", 1)
    assert len(r0["draws"]) == len(r1["draws"]) == 4  # 8 items, global batch 2 × 2, 2 epochs
    for a, b in zip(r0["draws"], r1["draws"]):
        assert a[:2] != b[:2] and a[2] != b[2]  # augmentation and drop-path differ between ranks
    # rank 0's loss was finite at step 1, yet no rank took that step: they stay in step
    assert r0["taken"] == r1["taken"] == [0, 2, 3]
    assert r0["weights"] == r1["weights"]
    assert _run(tmp_path / "one", "skip", 1, processes=1).returncode == 0
    assert _rank(tmp_path / "one", 0)["draws"][:4] == r0["draws"]  # rank 0 draws what one process draws


def test_a_nan_on_one_rank_under_stop_ends_every_rank_with_the_error_not_a_hang(tmp_path):
    result = _run(tmp_path, "stop", 2, processes=2)  # the timeout of _run is the hang detector
    assert result.returncode != 0
    for r in (0, 1):
        record = _rank(tmp_path, r)
        assert "non-finite loss at epoch 1, step 2" in record["error"]
        assert record["taken"] == [0, 1]
