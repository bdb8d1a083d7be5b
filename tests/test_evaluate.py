"""linear-eval, embed and predict end to end on fixture trees laid out like the real downloads."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from audio_fixtures import (
    FFMPEG_FORMATS,
    write_calm_busy_folder,
    write_ffmpeg,
    write_labeled_music,
)

from s3t.cli import main as cli
from s3t.config.loading import load_config
from s3t.data.datasets import load_folder
from s3t.data.preparation import prepare
from s3t.eval.linear_eval import linear_eval
from s3t.eval.predict import load_probe
from s3t.inference.encoders import Encoder, random_encoder
from s3t.inference.features import embed
from s3t.inference.load import load_encoder
from s3t.workflows.pretrain import pretrain

TINY = str(Path(__file__).parent.parent / "configs" / "tiny.yaml")
FAST = ["--config", TINY, "--set", "probe.epochs=8", "probe.warmup_epochs=1", "--workers", "0", "--no-progress"]


@pytest.fixture(scope="module")
def folder_tree(tmp_path_factory) -> Path:
    return write_calm_busy_folder(tmp_path_factory.mktemp("folder_data"))


@pytest.fixture(scope="module")
def checkpoint(folder_tree, tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("ckpt_cache")
    prepare(folder_tree, cache, workers=0, progress=False)
    return pretrain(load_config([TINY], ["train.batch_size=4", "moco.queue_size=8"]), cache,
                    tmp_path_factory.mktemp("ckpt_run"), progress=False)


def test_load_encoder_gives_the_trained_query_encoder(checkpoint):
    encoder = load_encoder(checkpoint)
    state = torch.load(checkpoint, weights_only=True)["encoder"]
    for k, v in encoder.backbone.state_dict().items():
        assert torch.equal(v, state[k])
    assert not any(p.requires_grad for p in encoder.parameters())
    assert encoder.frames == 128 and encoder.time_compression == 1


def test_embed_files_waves_and_windows(folder_tree):
    encoder = random_encoder(load_config([TINY]).model)
    files = sorted(folder_tree.glob("calm/*.wav"))[:3]
    feats = embed(files, encoder)
    assert feats.shape == (3, encoder.num_features) and np.isfinite(feats).all()
    from s3t.audio.decode import load_audio

    np.testing.assert_allclose(embed([load_audio(files[0])], encoder)[0], feats[0], rtol=1e-5, atol=1e-6)
    windowed = embed(files, encoder, windows=True, batch_size=2)  # 2 s = 87 frames < 128: one window each
    np.testing.assert_allclose(windowed, feats, rtol=1e-5, atol=1e-6)
    long = np.zeros((84, 300), np.float32)
    assert encoder.inputs_of(long, windows=True).shape == (3, 84, 128)  # starts 0, 64, 128


def test_linear_eval_never_changes_the_encoder(folder_tree, checkpoint, tmp_path):
    encoder = load_encoder(checkpoint)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    cfg = load_config([TINY], ["probe.epochs=5"]).probe
    linear_eval(load_folder(folder_tree), encoder, tmp_path, cfg, workers=0, progress=False)
    assert all(torch.equal(v, before[k]) for k, v in encoder.state_dict().items())


def test_folder_linear_eval_then_predict_as_real_processes(folder_tree, checkpoint, tmp_path):
    out = tmp_path / "probe"
    run = subprocess.run([sys.executable, "-m", "s3t", "linear-eval", "--dataset", "folder", "--root",
                          str(folder_tree), "--checkpoint", str(checkpoint), "--out", str(out), "--seeds", "2",
                          "--probe", "mlp", *FAST[2:]], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"]["probe"].startswith("MLP (one hidden layer of 512, ReLU, dropout 0.2)")
    low, high = metrics["track"]["top1_accuracy"]["ci95"]
    assert 0.0 <= low <= metrics["track"]["top1_accuracy"]["mean"] <= high <= 1.0
    assert metrics["classes"] == ["busy", "calm"] and metrics["counts"]["test"] == 4
    assert len(metrics["track"]["top1_accuracy"]["values"]) == 2
    assert 0.0 <= metrics["track"]["top1_accuracy"]["mean"] <= 1.0
    assert metrics["protocol"]["selection"] == "epoch with the best validation top-1"
    for name in ("summary.md", "confusion_matrix.png", "embedding_map.png", "probe.pt", "manifest.csv"):
        assert (out / name).stat().st_size > 0
    assert f"[{low:.4f}, {high:.4f}]" in (out / "summary.md").read_text()
    assert load_probe(out)[0].hidden_weight is not None  # predict below reads the MLP back

    files = [str(p) for p in sorted(folder_tree.glob("*/*.wav"))[:2]]
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"not audio at all" * 100)
    library = [str(write_ffmpeg(tmp_path / f"bought{ext}")) for ext in sorted(FFMPEG_FORMATS)]  # via FFmpeg
    pred = subprocess.run([sys.executable, "-m", "s3t", "predict", "--checkpoint", str(checkpoint), "--probe",
                           str(out), "--top", "2", "--json", files[0], str(broken), files[1], *library],
                          capture_output=True, text=True, timeout=300)
    assert pred.returncode == 0, pred.stderr
    results = json.loads(pred.stdout)
    assert [r["path"] for r in results] == [files[0], str(broken), files[1], *library]
    assert "top" not in results[1] and "cannot decode" in results[1]["error"]
    assert f"skipped {broken}" in pred.stderr
    good = [results[0], *results[2:]]
    assert all({t["label"] for t in r["top"]} == {"busy", "calm"} for r in good)
    assert all(abs(sum(t["score"] for t in r["top"]) - 1.0) < 1e-5 for r in good)


def test_random_init_separates_fixture_classes(folder_tree, tmp_path):
    """Known answer: the fixture classes differ in tempo and drone pitch; a probe finds that."""
    assert cli(["linear-eval", "--dataset", "folder", "--root", str(folder_tree), "--encoder", "random",
                "--out", str(tmp_path), "--set", "probe.epochs=30", *FAST[:2], *FAST[5:]]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["track"]["top1_accuracy"]["mean"] == 1.0
    assert metrics["track"]["top1_accuracy"]["ci95"] == [1.0, 1.0]  # every resample of right tracks is right
    assert metrics["encoder"] == "random(seed=0)"


def test_features_are_computed_once_per_encoder(folder_tree, tmp_path):
    args = ["linear-eval", "--dataset", "folder", "--root", str(folder_tree), "--encoder", "random",
            "--out", str(tmp_path), *FAST]
    assert cli(args) == 0
    feature_files = list((tmp_path / "features").glob("*.npz"))
    stamp = feature_files[0].stat().st_mtime_ns
    assert cli(args) == 0
    assert [f.stat().st_mtime_ns for f in (tmp_path / "features").glob("*.npz")] == [stamp]


def gtzan_tree(root: Path) -> Path:
    lists = {s: (Path(__file__).parents[1] / "src/s3t/splits/gtzan" / f"{s}_filtered.txt").read_text().split()
             for s in ("train", "valid", "test")}
    for genre, label in (("blues", 0), ("metal", 1)):
        for split, n in (("train", 4), ("valid", 2), ("test", 2)):
            for rel in [r for r in lists[split] if r.startswith(genre + "/")][:n]:
                write_labeled_music(root / "genres" / rel, label, seed=hash(rel) % 1000)
    return root


def fma_tree(root: Path) -> Path:
    from test_datasets import write_fma_tracks

    rows = []
    for k, (split, genre, label) in enumerate([(s, g, lab) for s, n in (("training", 4), ("validation", 2),
                                                                          ("test", 2))
                                                for g, lab in (("Rock", 0), ("Folk", 1)) for _ in range(n)]):
        track = 1000 + k
        rows.append((track, split, "small", genre))
        write_labeled_music(root / "fma_small" / f"{track:06d}"[:3] / f"{track:06d}.mp3", label, seed=k)
    rows.append((99134, "training", "small", "Rock"))  # listed, no audio: skipped with a warning
    write_fma_tracks(root / "fma_metadata" / "tracks.csv", rows)
    return root


def mtat_tree(root: Path) -> Path:
    from test_datasets import write_mtat

    rows = []
    for k, folder in enumerate("0123456789abcdef"):
        for j in range(2):
            label = (k + j) % 2
            rel = f"{folder}/clip{k}_{j}.mp3"
            write_labeled_music(root / "mp3" / rel, label, seed=k * 2 + j)
            rows.append((rel, {"slow": 1 - label, "fast": label, "drums": 1}))
    write_mtat(root, rows, ["slow", "fast", "drums", "vocal"])
    return root


def csv_tree(root: Path) -> Path:
    root.mkdir(parents=True)
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        for k in range(12):
            write_labeled_music(root / "audio" / f"{k}.flac", k % 2, seed=k)
            w.writerow([f"audio/{k}.flac", ["low", "high"][k % 2]])
    return root / "labels.csv"


@pytest.mark.parametrize("kind, build, headline", [
    ("gtzan", gtzan_tree, "top1_accuracy"), ("fma", fma_tree, "top1_accuracy"),
    ("mtat", mtat_tree, "roc_auc_macro"), ("csv", csv_tree, "top1_accuracy")])
def test_every_dataset_kind_evaluates_from_the_cli(kind, build, headline, tmp_path):
    root = build(tmp_path / "data")
    assert cli(["linear-eval", "--dataset", kind, "--root", str(root), "--encoder", "random",
                "--out", str(tmp_path / "out"), "--label-fraction", "0.5", *FAST]) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert 0.0 <= metrics["track"][headline]["mean"] <= 1.0
    assert metrics["protocol"]["label_fraction"] == 0.5
    picture = "tag_auc.png" if kind == "mtat" else "confusion_matrix.png"
    assert (tmp_path / "out" / picture).stat().st_size > 0


def test_embed_cli_writes_features_for_a_folder(folder_tree, checkpoint, tmp_path):
    out = tmp_path / "feats.npz"
    assert cli(["embed", str(folder_tree), "--checkpoint", str(checkpoint), "--out", str(out),
                "--workers", "0", "--no-progress"]) == 0
    with np.load(out) as f:
        assert f["features"].shape == (20, load_encoder(checkpoint).num_features)
        assert list(f["track_ids"])[:2] == ["busy/busy0.wav", "busy/busy1.wav"]


def interrupt_after_one_chunk(monkeypatch, cache, encoder, out) -> None:
    """Run embed_cache_to_file in chunks of 8 and stop it (KeyboardInterrupt) in its second chunk."""
    from s3t.inference import features as embed_module

    real, calls = embed_module.extract_features, []

    def dies_on_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(embed_module, "extract_features", dies_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        embed_module.embed_cache_to_file(cache, encoder, out, chunk=8, progress=False)
    monkeypatch.setattr(embed_module, "extract_features", real)


def test_embed_resumes_from_finished_chunks(folder_tree, tmp_path, monkeypatch):
    from s3t.data.cache import open_cache
    from s3t.inference import features as embed_module

    cache_dir = tmp_path / "cache"
    prepare(folder_tree, cache_dir, workers=0, progress=False)
    cache, encoder = open_cache(cache_dir), random_encoder(load_config([TINY]).model)
    full = embed_module.embed_cache_to_file(cache, encoder, tmp_path / "full.npz", chunk=8, progress=False)

    interrupt_after_one_chunk(monkeypatch, cache, encoder, tmp_path / "part.npz")
    real, seen = embed_module.extract_features, []
    monkeypatch.setattr(embed_module, "extract_features", lambda c, e, idx, *a, **k: seen.append(list(idx)) or
                        real(c, e, idx, *a, **k))
    resumed = embed_module.embed_cache_to_file(cache, encoder, tmp_path / "part.npz", chunk=8, progress=False)
    assert seen == [list(range(8, 16)), list(range(16, 20))]  # the first chunk was not redone
    assert not (tmp_path / "part.npz.partial").exists()
    with np.load(full) as a, np.load(resumed) as b:
        np.testing.assert_allclose(a["features"], b["features"], rtol=1e-5, atol=1e-6)
        assert list(a["track_ids"]) == list(b["track_ids"])


def test_encoder_refuses_a_cache_of_another_time_compression(folder_tree, tmp_path):
    from s3t.data.cache import open_cache
    from s3t.inference.features import extract_features

    prepare(folder_tree, tmp_path, workers=0, time_compression=2, progress=False)
    encoder = Encoder(random_encoder(load_config([TINY]).model).backbone, load_config([TINY]).model, 1)
    with pytest.raises(ValueError, match="--time-compression 2"):
        extract_features(open_cache(tmp_path), encoder, progress=False)


def test_damaged_feature_file_is_computed_again(folder_tree, tmp_path, caplog):
    args = ["linear-eval", "--dataset", "folder", "--root", str(folder_tree), "--encoder", "random",
            "--out", str(tmp_path), *FAST]
    assert cli(args) == 0
    first = json.loads((tmp_path / "metrics.json").read_text())
    feature_file = next((tmp_path / "features").glob("*.npz"))
    data = feature_file.read_bytes()
    feature_file.write_bytes(data[: len(data) // 2])  # truncated, as by a full disk
    assert cli(args) == 0
    assert "is damaged" in caplog.text
    assert json.loads((tmp_path / "metrics.json").read_text())["track"] == first["track"]


def test_embed_killed_at_random_moments_resumes_to_the_uninterrupted_result(folder_tree, checkpoint, tmp_path):
    import os
    import random
    import signal
    import time

    reference = tmp_path / "ref.npz"
    args = ["embed", str(folder_tree), "--checkpoint", str(checkpoint), "--save-every", "4", "--workers", "0",
            "--no-progress"]
    assert cli([*args, "--out", str(reference)]) == 0
    rng = random.Random(0)
    for trial in range(3):
        out = tmp_path / f"killed{trial}.npz"
        proc = subprocess.Popen([sys.executable, "-m", "s3t", *args, "--out", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 5.0))  # start-up, prepare, embed or done: wherever it lands
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert cli([*args, "--out", str(out)]) == 0
        with np.load(reference) as a, np.load(out) as b:
            assert list(a["track_ids"]) == list(b["track_ids"])
            np.testing.assert_array_equal(a["features"], b["features"])


def test_embed_progress_of_another_encoder_is_not_reused(folder_tree, tmp_path, monkeypatch):
    from s3t.data.cache import open_cache
    from s3t.inference import features as embed_module

    prepare(folder_tree, tmp_path / "cache", workers=0, progress=False)
    cache, tiny = open_cache(tmp_path / "cache"), load_config([TINY]).model
    interrupt_after_one_chunk(monkeypatch, cache, random_encoder(tiny, seed=0), tmp_path / "f.npz")
    other = random_encoder(tiny, seed=1)
    out = embed_module.embed_cache_to_file(cache, other, tmp_path / "f.npz", chunk=8, progress=False)
    with np.load(out) as f:
        np.testing.assert_allclose(f["features"], embed_module.extract_features(cache, other, progress=False),
                                   rtol=1e-5, atol=1e-6)


def test_linear_eval_takes_the_cqt_stats_reference_from_the_cli(folder_tree, tmp_path):
    assert cli(["linear-eval", "--dataset", "folder", "--root", str(folder_tree), "--encoder", "cqt-stats",
                "--out", str(tmp_path / "out"), *FAST]) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["encoder"] == "cqt-stats" and metrics["track"]["top1_accuracy"]["mean"] >= 0.75
