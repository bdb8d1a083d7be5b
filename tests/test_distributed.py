"""The engine in real two-process gloo runs under torchrun: each rank draws its own augmentations,
a non-finite loss on one rank is met by all, and a rank killed mid-run either restarts the job
from last.pt (--max-restarts) or ends it with an error, never a hang."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from processes import launched, run_group

from s3t.io.checkpoint import load_checkpoint

WORKER = Path(__file__).parent / "ddp_worker.py"
TINY = Path(__file__).parent.parent / "configs" / "tiny.yaml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _run(out: Path, nan_policy: str, nan_step: int, processes: int) -> subprocess.CompletedProcess:
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    launcher = launcher if processes > 1 else []
    cmd = [sys.executable, *launcher, str(WORKER), str(out), nan_policy, str(nan_step)]
    return run_group(cmd, ENV, timeout=180)


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


def _pretrain(out: Path, cache: Path, restarts: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "--max-restarts", str(restarts), "-m", "s3t", "pretrain", "--data", str(cache), "--out", str(out),
            "--config", str(TINY), "--no-progress", "--set", "train.batch_size=4", "optim.epochs=4",
            "train.device=cpu", "train.workers=0", "train.checkpoint_steps=1", "train.log_every=1"]


def _kill_rank_1_after_step_2(out: Path, proc: subprocess.Popen) -> None:
    """SIGKILL the rank-1 worker of the run writing to `out` once its log reaches step 2."""
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        log = out / "log.csv"
        if log.exists() and len(log.read_text().splitlines()) > 2:
            break
        time.sleep(0.05)
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(out).encode() in cmdline and b"RANK=1" in environ:
            os.kill(pid, signal.SIGKILL)
            return
    raise AssertionError("no rank-1 worker found to kill")


def test_a_rank_killed_mid_run_restarts_the_job_from_last_pt_and_reaches_the_same_weights(cache, tmp_path):
    reference = run_group(_pretrain(tmp_path / "ref", cache, 0), ENV, timeout=180)
    assert reference.returncode == 0, reference.stderr[-3000:]
    run = tmp_path / "killed"
    with launched(_pretrain(run, cache, 1), ENV) as proc:
        _kill_rank_1_after_step_2(run, proc)
        _, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr[-3000:]
    assert "resumed" in stderr  # the restarted workers went on from last.pt without being told
    want, got = load_checkpoint(tmp_path / "ref" / "last.pt"), load_checkpoint(run / "last.pt")
    assert (got["progress"]["step"], got["progress"]["epoch"]) == (want["progress"]["step"], want["progress"]["epoch"])
    for part in ("encoder", "method_state"):
        for key, value in want[part].items():
            assert torch.equal(got[part][key], value), key


def test_a_rank_that_dies_for_good_ends_the_job_with_an_error(cache, tmp_path):
    with launched(_pretrain(tmp_path, cache, 0), ENV) as proc:
        _kill_rank_1_after_step_2(tmp_path, proc)
        _, stderr = proc.communicate(timeout=120)  # the hang detector
    assert proc.returncode != 0 and "SIGKILL" in stderr


REJOIN = """
import os, sys, time
import torch, torch.distributed as dist
from s3t.training.distributed import setup_distributed

rank, attempt = int(os.environ["RANK"]), int(os.environ["TORCHELASTIC_RESTART_COUNT"])
if attempt == 1 and rank == 0:
    time.sleep(3)  # rank 1 reaches the store first and finds attempt 0's keys there
setup_distributed("cpu")
total = torch.tensor([rank + 1.0])
dist.all_reduce(total)
if attempt == 0 and rank == 1:
    sys.exit(1)
with open(os.path.join(os.path.dirname(__file__), f"rank{rank}-attempt{attempt}"), "w") as f:
    f.write(f"{total.item():g}")
"""


def test_a_restarted_group_does_not_read_the_previous_attempts_addresses(tmp_path):
    # torchrun keeps one store across restarts; a rank that joins before its peers must not find
    # the last attempt's (dead) addresses there (pytorch#135712)
    (tmp_path / "rejoin.py").write_text(REJOIN)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "--max-restarts", "1", str(tmp_path / "rejoin.py")]
    result = run_group(cmd, ENV, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):
        assert (tmp_path / f"rank{rank}-attempt1").read_text() == "3"  # the restarted pair's all-reduce


def test_each_rank_leaves_the_process_group_before_the_interpreter_shuts_down(tmp_path):
    # left to interpreter shutdown, gloo's threads could abort a finished run (pytorch#190489); atexit
    # runs its handlers last-registered first, so this check, registered before the group is joined, runs
    # after the engine's own handler
    script = tmp_path / "join.py"
    # each rank answers in its own file: two ranks printing to one stdout can interleave their words
    script.write_text("import atexit, os, pathlib, torch.distributed as dist\n"
                      f"out = pathlib.Path({str(tmp_path)!r}) / ('left' + os.environ['RANK'])\n"
                      "atexit.register(lambda: out.write_text(str(not dist.is_initialized())))\n"
                      "from s3t.training.distributed import setup_distributed\n"
                      "assert setup_distributed('cpu').size == 2 and dist.is_initialized()\n")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    result = run_group(cmd, ENV, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [(tmp_path / f"left{rank}").read_text() for rank in (0, 1)] == ["True", "True"]
