"""A hostile corpus through every command: no crash, no NaN, one warning per bad file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio_fixtures import write_audio, write_broken_files, write_labeled_music

TINY = str(Path(__file__).parent.parent / "configs" / "tiny.yaml")


def write_odd_but_valid(folder: Path) -> list[Path]:
    """Audio that is legal but extreme: every command must handle it without NaN."""
    sr = 22050
    t = np.arange(2 * sr) / sr
    files = [
        write_audio(folder / "silence.wav", np.zeros(2 * sr, np.float32)),
        write_audio(folder / "dc.wav", np.full(2 * sr, 0.5, np.float32)),
        write_audio(folder / "clipped.flac", np.sign(np.sin(2 * np.pi * 220 * t)).astype(np.float32)),
        write_audio(folder / "low rate 8k.wav", np.sin(2 * np.pi * 440 * np.arange(16000) / 8000).astype(np.float32),
                    sr=8000),
        write_audio(folder / "high rate 96k.flac", np.sin(2 * np.pi * 440 * np.arange(192000) / 96000)
                    .astype(np.float32) * 0.5, sr=96000),
        write_audio(folder / "six channels.wav", np.sin(2 * np.pi * 330 * t).astype(np.float32) * 0.3, channels=6),
        write_audio(folder / "ünïcødé ♪.ogg", np.sin(2 * np.pi * 550 * t).astype(np.float32) * 0.3),
        _lying_header(folder / "lying header.wav"),  # libsndfile reads the 978 samples that are there
        write_audio(folder / "twenty minutes.flac", (0.2 * np.sin(2 * np.pi * 110 * np.arange(20 * 60 * 8000) / 8000))
                    .astype(np.float32), sr=8000),
    ]
    return files


def _lying_header(path: Path) -> Path:
    """A WAV whose header promises 22,050 samples and whose data stops after 978."""
    full = write_audio(path, 0.3 * np.sin(np.arange(22050) / 10).astype(np.float32)).read_bytes()
    path.write_bytes(full[:2000])
    return path


def write_bad(folder: Path) -> list[Path]:
    files = list(write_broken_files(folder).values())
    nan = folder / "nan.wav"
    sf.write(str(nan), np.array([0.1, np.nan, np.inf] * 2000, np.float32), 22050, subtype="FLOAT")
    one = write_audio(folder / "one sample.wav", np.zeros(1, np.float32))
    cut = []
    for suffix in (".mp3", ".ogg"):  # the first 300 bytes of a real file: a header and no audio
        whole = write_labeled_music(folder / f"whole{suffix}", 0).read_bytes()
        (folder / f"whole{suffix}").unlink()
        cut.append(folder / f"truncated{suffix}")
        cut[-1].write_bytes(whole[:300])
    empty = write_audio(folder / "zero samples.wav", np.zeros(0, np.float32))  # a header and no data
    pipe = folder / "pipe.wav"
    os.mkfifo(pipe)  # opening it for reading would wait forever for a writer
    dangling = folder / "gone.flac"
    dangling.symlink_to(folder / "deleted.flac")
    return files + [nan, one, empty, pipe, dangling] + cut


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[Path, list[Path], list[Path]]:
    root = tmp_path_factory.mktemp("hostile")
    for label in (0, 1):
        for k in range(6):
            write_labeled_music(root / f"class{label}" / f"good{k}.wav", label, seed=label * 10 + k)
    odd = write_odd_but_valid(root / "class0")
    bad = write_bad(root / "class1")
    os.symlink(root / "class1", root / "class1" / "loop")  # a folder that contains itself
    return root, odd, bad


def s3t(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "s3t", *args], capture_output=True, text=True, timeout=600, cwd=cwd)


def test_hostile_corpus_through_prepare_embed_linear_eval_and_predict(hostile, tmp_path):
    root, odd, bad = hostile
    feats = tmp_path / "feats.npz"
    run = s3t("embed", str(root), "--encoder", "random", "--config", TINY, "--out", str(feats), "--no-progress")
    assert run.returncode == 0, run.stderr
    for path in bad:
        assert run.stderr.count(f"skipped {path}") == 1, path
    assert f"skipped: {len(bad)}" in run.stdout
    with np.load(feats) as f:
        assert len(f["track_ids"]) == 12 + len(odd) and np.isfinite(f["features"]).all()

    out = tmp_path / "probe"
    run = s3t("linear-eval", "--dataset", "folder", "--root", str(root), "--encoder", "random", "--config", TINY,
              "--set", "probe.epochs=5", "--out", str(out), "--cache", str(tmp_path / "cache"), "--no-progress")
    assert run.returncode == 0, run.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["counts"]["skipped_files"] == len(bad)
    assert np.isfinite(metrics["track"]["top1_accuracy"]["mean"])

    ckpt_run = s3t("pretrain", "--data", str(feats) + ".cache", "--out", str(tmp_path / "run"), "--config", TINY,
                   "--set", "train.batch_size=4", "moco.queue_size=8", "optim.epochs=1", "--no-progress")
    assert ckpt_run.returncode == 0, ckpt_run.stderr
    # predict needs the probe of the encoder it runs: probe the checkpoint, then predict everything
    ckpt = tmp_path / "run" / "last.pt"
    run = s3t("linear-eval", "--dataset", "folder", "--root", str(root), "--checkpoint", str(ckpt),
              "--set", "probe.epochs=5", "--out", str(tmp_path / "probe2"), "--cache", str(tmp_path / "cache"),
              "--no-progress")
    assert run.returncode == 0, run.stderr
    run = s3t("predict", "--checkpoint", str(ckpt), "--probe", str(tmp_path / "probe2"), "--json",
              *map(str, odd + bad))
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout)
    assert [("top" in r) for r in results] == [True] * len(odd) + [False] * len(bad)
    assert all(np.isfinite([t["score"] for t in r["top"]]).all() for r in results[: len(odd)])


def test_manifest_paths_cannot_make_prepare_write_outside_out(tmp_path):
    from s3t.data.preparation import prepare

    good = write_labeled_music(tmp_path / "music" / "a.wav", 0)
    (tmp_path / "evil").mkdir()
    manifest = tmp_path / "evil" / "m.csv"
    climb = "../" * 40  # above the root stays at the root
    manifest.write_text(f"path,label\n../music/a.wav,x\n{climb}{good.relative_to('/')},y\n/etc/passwd,z\n")
    before = {p for p in tmp_path.rglob("*")}
    summary = prepare(manifest, tmp_path / "out", workers=0, progress=False)
    assert summary.written == 2 and len(summary.skipped) == 1  # /etc/passwd is not audio: skipped
    created = {p for p in tmp_path.rglob("*")} - before
    assert created and all(tmp_path / "out" in p.parents or p == tmp_path / "out" for p in created)
