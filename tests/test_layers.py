"""The package's layers, as pyproject.toml's import-linter contract states them: the real package keeps
it, and a copy in which a lower layer imports a higher one (even inside a function) breaks it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
LINT = Path(sys.executable).with_name("lint-imports")


def lint(package_parent: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(package_parent)}  # this copy of s3t, not the installed one
    return subprocess.run([str(LINT), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=package_parent,
                          env=env, capture_output=True, text=True, timeout=300)


def test_the_package_keeps_its_layers_and_has_no_cycles():
    run = lint(ROOT / "src")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "layers KEPT" in run.stdout and "no cycles KEPT" in run.stdout


@pytest.mark.parametrize("line", [
    "from s3t.workflows import demo\n",
    "def late():\n    from s3t.eval.probe import train_probe  # hidden in a function: still an import\n",
])
def test_a_lower_layer_importing_a_higher_one_breaks_the_contract(line, tmp_path):
    shutil.copytree(ROOT / "src" / "s3t", tmp_path / "s3t", ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "s3t" / "audio" / "decode.py", "a") as f:
        f.write(line)
    run = lint(tmp_path)
    assert run.returncode != 0
    assert "layers BROKEN" in run.stdout and "s3t.audio is not allowed to import" in run.stdout
