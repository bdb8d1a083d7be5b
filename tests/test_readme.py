"""The README's examples cannot break silently: every `s3t` command in it is parsed by the real CLI
parser and its configuration resolved and built (the step where `--set model.preprocessor=freq_tile`
once failed); every Python block compiles and names only what exists; the "Lower level" block runs
for real on a generated song and cache. The end-to-end runs behind each command are in the test
files named beside it in COVERED."""

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from audio_fixtures import write_music

README = Path(__file__).parent.parent / "README.md"

# the test files that run each command for real (kept honest below: each file must exist)
COVERED = {"prepare": "test_prepare.py", "pretrain": "test_train.py", "linear-eval": "test_evaluate.py",
           "supervised": "test_supervised.py", "clmr": "test_clmr.py", "reproduce": "test_reproduce.py",
           "embed": "test_evaluate.py", "predict": "test_evaluate.py", "export": "test_export.py"}


def blocks(language: str) -> list[tuple[int, str]]:
    """(first line number, text) of every fenced block in `language`."""
    text = README.read_text()
    return [(text[: m.start()].count("\n") + 2, m.group(1))
            for m in re.finditer(rf"```{language}\n(.*?)```", text, flags=re.S)]


def s3t_commands() -> list[tuple[int, list[str]]]:
    """(README line, argv after `s3t`) of every s3t command in the bash blocks, placeholders made concrete."""
    found = []
    for start, block in blocks("bash"):
        for offset, line in enumerate(block.splitlines()):
            line = re.sub(r"\s+#.*$", "", line)  # trailing comments
            line = re.sub(r"\[(--[^\]]*)\]", r"\1", line)  # optional flags: [--top 3] -> --top 3
            line = line.replace("<label>/...", "label").replace("--checkpoint ... --out ...",
                                                                    "--checkpoint c.pt --out o")
            words = shlex.split(line)
            if "-m" in words and "s3t" in words:  # torchrun … -m s3t …
                words = words[words.index("s3t", words.index("-m")):]
            if words and Path(words[0]).name == "s3t":
                found.append((start + offset, words[1:]))
    return found


def test_the_readme_has_commands_for_every_subcommand_it_documents():
    commands = {argv[0] for _, argv in s3t_commands()}
    assert commands >= {"prepare", "pretrain", "linear-eval", "supervised", "clmr", "reproduce", "embed", "predict"}
    here = Path(__file__).parent
    for command in commands:
        assert (here / COVERED[command]).exists(), f"no test runs `s3t {command}`"


@pytest.mark.parametrize("line, argv", s3t_commands(), ids=lambda v: str(v) if isinstance(v, int) else None)
def test_every_readme_command_parses_and_its_config_builds(line, argv):
    from s3t.cli.parser import build_parser
    from s3t.config.loading import load_config
    from s3t.methods.registry import build_method
    from s3t.models.backbones import build_encoder

    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"README line {line}: `s3t {' '.join(argv)}` is rejected by the parser")
    if hasattr(args, "overrides"):
        cfg = load_config(args.config or [], args.overrides)
        if args.command in ("pretrain", "clmr"):
            build_method(cfg)
        else:
            build_encoder(cfg.model)  # geometry checked, with the numbers


def test_every_python_block_compiles_and_names_what_exists():
    import importlib

    import s3t

    for line, block in blocks("python"):
        compile(block, f"README.md:{line}", "exec")
        for name in re.findall(r"\bs3t\.([a-z_]+)\(", block):
            assert callable(getattr(s3t, name)), f"README.md:{line}: s3t.{name} does not exist"
        for module, names in re.findall(r"^from (s3t[\w.]*) import (.+)$", block, flags=re.M):
            for name in (n.strip() for n in names.split(",")):
                assert hasattr(importlib.import_module(module), name), f"README.md:{line}: {module}.{name}"


def test_the_lower_level_python_block_runs(tmp_path, monkeypatch):
    from s3t.data.preparation import prepare

    lower = [b for _, b in blocks("python") if "load_audio(\"song.ogg\")" in b]
    assert len(lower) == 1
    write_music(tmp_path / "music" / "song.ogg", seconds=20.0, seed=3)
    (tmp_path / "song.ogg").write_bytes((tmp_path / "music" / "song.ogg").read_bytes())
    prepare(tmp_path / "music", tmp_path / "cache", workers=0, progress=False)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(lower[0], "README.md", "exec"), scope)
    assert scope["x"].shape == (2, 1, 256, 256) and np.isfinite(scope["x"].numpy()).all()
