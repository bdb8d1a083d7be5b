"""Launching torchrun from tests: in its own process group, killed whole when the test is done, so a
timed-out or failed test leaves no worker processes behind to load the machine."""

import os
import signal
import subprocess
from contextlib import contextmanager


@contextmanager
def launched(cmd: list[str], env: dict, stdout=subprocess.PIPE):
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        yield proc
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # torchrun's workers outlive it when it is killed alone
        except ProcessLookupError:
            pass
        proc.communicate()


def run_group(cmd: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    """subprocess.run(cmd, capture_output=True, text=True, timeout=...), whose timeout also ends the workers."""
    with launched(cmd, env) as proc:
        stdout, stderr = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
