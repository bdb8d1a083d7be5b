"""Bad flags, roots, layouts and geometry: each command fails at once, naming the problem."""

import time
from pathlib import Path

import pytest

import s3t.eval.linear_eval  # noqa: F401  imported up front: the one-second budget is for failing, not for importing timm
from audio_fixtures import write_music
from s3t.cli import main as cli
from s3t.data.preparation import prepare

TINY = str(Path(__file__).parent.parent / "configs" / "tiny.yaml")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    audio_dir = tmp_path_factory.mktemp("err_audio")
    for i in range(8):
        write_music(audio_dir / f"t{i}.wav", seconds=2.0, seed=i)
    out = tmp_path_factory.mktemp("err_cache")
    prepare(audio_dir, out, workers=0, progress=False)
    return out


def case(tmp: Path, cache: Path, name: str) -> tuple[list[str], str]:
    fma = tmp / "fma"
    (fma / "fma_small").mkdir(parents=True, exist_ok=True)
    run = ["pretrain", "--data", str(cache), "--out", str(tmp / "run"), "--config", TINY, "--no-progress", "--set"]
    return {
        "prepare, missing input": (["prepare", str(tmp / "nowhere"), "--out", str(tmp / "c")],
                                   "expected a folder of audio files or a CSV manifest"),
        "pretrain, impossible geometry": (run + ["model.input_size=120"], "not a multiple of the window size"),
        "pretrain, fold too deep": (run + ["model.fold=4", "model.input_size=256"], "lower model.fold"),
        "pretrain, wrong type": (run + ["optim.lr=fast"], "optim.lr: expected float"),
        "pretrain, unknown key": (run + ["optim.learning_rate=1e-3"], "unknown key optim.learning_rate"),
        "pretrain, a GPU this machine lacks": (run + ["train.device=cuda:7"], "train.device=cuda:7: "),
        "pretrain, not a cache": (["pretrain", "--data", str(tmp), "--out", str(tmp / "r")], "index.sqlite"),
        "linear-eval, missing root": (["linear-eval", "--dataset", "gtzan", "--root", str(tmp / "none"),
                                       "--encoder", "random", "--out", str(tmp / "o")], "genres/blues/blues.00000.wav"),
        "linear-eval, fma without tracks.csv": (["linear-eval", "--dataset", "fma", "--root", str(fma),
                                                 "--encoder", "random", "--out", str(tmp / "o")],
                                                "fma_metadata/tracks.csv"),
        "embed, missing checkpoint": (["embed", str(cache), "--checkpoint", str(tmp / "no.pt"), "--out",
                                       str(tmp / "f.npz")], "no such checkpoint"),
        "predict, folder without a probe": (["predict", "x.wav", "--checkpoint", str(tmp / "no.pt"), "--probe",
                                             str(tmp)], "no such checkpoint"),
    }[name]


NAMES = ["prepare, missing input", "pretrain, impossible geometry", "pretrain, fold too deep", "pretrain, wrong type",
         "pretrain, unknown key",
         "pretrain, a GPU this machine lacks", "pretrain, not a cache", "linear-eval, missing root",
         "linear-eval, fma without tracks.csv", "embed, missing checkpoint", "predict, folder without a probe"]


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_fails_at_once_naming_the_problem(name, cache, tmp_path, capsys):
    args, message = case(tmp_path, cache, name)
    start = time.perf_counter()
    assert cli(args) == 2
    assert time.perf_counter() - start < 1.0
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["prepare", "x", "--out", "c", "--workers", "-1"], "must be a whole number >= 0"),
    (["linear-eval", "--dataset", "imagenet", "--root", "r", "--encoder", "random", "--out", "o"], "invalid choice"),
    (["embed", "x", "--checkpoint", "c.pt", "--encoder", "random", "--out", "f.npz"], "not allowed with argument"),
    (["embed", "x", "--encoder", "random", "--out", "f.npz", "--device", "gpu0"], "unknown device 'gpu0'"),
    (["prepare", "x", "--out", "c", "--device", "cuda:"], "expected auto, cpu, cuda or cuda:N"),
])
def test_bad_flags_are_argparse_errors(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        cli(args)
    assert e.value.code == 2 and message in capsys.readouterr().err
