import csv
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from processes import launched, run_group

from audio_fixtures import write_music
from s3t.config.loading import load_config
from s3t.data.preparation import prepare
from s3t.io.checkpoint import load_checkpoint
from s3t.training.engine import TrainingError
from s3t.workflows.pretrain import pretrain

TINY = Path(__file__).parent.parent / "configs" / "tiny.yaml"


def tiny(*overrides: str):
    return load_config([TINY], list(overrides))


def test_pretrain_writes_a_complete_run(cache, tmp_path):
    last = pretrain(tiny("optim.epochs=3"), cache, tmp_path, progress=False)
    assert {p.name for p in tmp_path.iterdir()} >= {"config.yaml", "log.csv", "loss.png", "last.pt",
                                                    "epoch0001.pt", "epoch0003.pt"}
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, 7))  # 16 tracks // 8 = 2 steps × 3 epochs
    assert all(math.isfinite(float(r["loss"])) and 0 <= float(r["acc1"]) <= 1 for r in rows)
    ckpt = load_checkpoint(last)
    assert ckpt["progress"]["step"] == 6 and ckpt["progress"]["epoch"] == 3 and ckpt["method"] == "moco"
    assert ckpt["config"]["model"]["name"] == "swin_nano"
    assert int(ckpt["method_state"]["queue_ptr"]) == (6 * 8) % 64
    assert load_config([tmp_path / "config.yaml"]) == tiny("optim.epochs=3")


@pytest.mark.parametrize("name, preprocessor", [("crnn_small", "time_fold"), ("resnet18", "freq_tile"),
                                                 ("swin_nano", "freq_tile")])
def test_every_backbone_and_pre_processor_pretrains_and_embeds(name, preprocessor, cache, tmp_path):
    from s3t.data.cache import open_cache
    from s3t.inference.features import extract_features
    from s3t.inference.load import load_encoder

    # tiny folds one segment; tiling fills 128 rows with 2 copies of its own accord (model.tile=0)
    cfg = tiny("optim.epochs=1", f"model.name={name}", f"model.preprocessor={preprocessor}")
    last = pretrain(cfg, cache, tmp_path, progress=False)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert len(rows) == 2 and all(math.isfinite(float(r["loss"])) for r in rows)
    encoder = load_encoder(last)
    assert encoder.model_cfg.name == name and encoder.model_cfg.preprocessor == preprocessor
    feats = extract_features(open_cache(cache), encoder, [0, 1, 2], progress=False)
    assert feats.shape == (3, encoder.num_features) and np.isfinite(feats).all()


def test_too_little_data_and_bad_queue_fail_at_once(cache, tmp_path):
    with pytest.raises(TrainingError, match="fewer than one global batch of 32"):
        pretrain(tiny("train.batch_size=32"), cache, tmp_path, progress=False)
    with pytest.raises(ValueError, match="queue_size 60 must be a multiple of the global batch 8"):
        pretrain(tiny("moco.queue_size=60"), cache, tmp_path, progress=False)
    with pytest.raises(ValueError, match="more than model.input_size 128"):
        pretrain(tiny("model.fold=3"), cache, tmp_path, progress=False)


def _torchrun(launcher: list[str], cache: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *launcher, "-m", "s3t", "pretrain", "--data", str(cache),
            "--out", str(out), "--config", str(TINY), "--set", "train.batch_size=4", "--set", "optim.epochs=2",
            "--set", "train.device=cpu", "--no-progress"]


def test_torchrun_two_cpu_processes_on_one_node_and_on_two(cache, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one_node = ["--standalone", "--nproc_per_node", "2"]
    result = run_group(_torchrun(one_node, cache, tmp_path), env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "all 2 ranks hold the same weights" in result.stderr
    ckpt = load_checkpoint(tmp_path / "last.pt")
    # 16 tracks, global batch 2 × 4 = 8: 2 steps per epoch; each step enqueues the keys of both ranks
    assert ckpt["progress"]["step"] == 4
    assert int(ckpt["method_state"]["queue_ptr"]) == (4 * 8) % 64
    assert not torch.equal(ckpt["method_state"]["queue"][:, :8], ckpt["method_state"]["queue"][:, 8:16])
    # two "nodes": two launchers of one process each, meeting at a c10d rendezvous on this machine
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    two_nodes = ["--nnodes", "2", "--nproc_per_node", "1", "--rdzv_backend", "c10d", "--rdzv_id", "s3t-test",
                 "--rdzv_endpoint", f"127.0.0.1:{port}"]
    with launched(_torchrun(two_nodes, cache, tmp_path / "nodes"), env, stdout=subprocess.DEVNULL) as first, \
            launched(_torchrun(two_nodes, cache, tmp_path / "nodes"), env, stdout=subprocess.DEVNULL) as second:
        nodes = [first, second]
        errors = [node.communicate(timeout=300)[1] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], errors[0][-2000:] + errors[1][-2000:]
    spread = load_checkpoint(tmp_path / "nodes" / "last.pt")
    for part in ("encoder", "method_state"):
        for key, value in ckpt[part].items():
            assert torch.equal(spread[part][key], value), key


def test_clips_of_one_track_share_a_group(tmp_path):
    from s3t.data.cache import open_cache
    from s3t.data.views import track_groups

    for i in range(3):
        write_music(tmp_path / "audio" / f"t{i}.wav", seconds=3.0 + i, seed=i)
    prepare(tmp_path / "audio", tmp_path / "clips", workers=0, clip_seconds=1.0, progress=False)
    cache = open_cache(tmp_path / "clips")
    groups = track_groups(cache)
    tracks = [t.split("#")[0] for t in cache.track_ids]
    assert len(groups) == 3 + 4 + 5 and len(set(groups)) == 3
    assert all((groups[a] == groups[b]) == (tracks[a] == tracks[b]) for a in range(12) for b in range(12))


def test_sigkill_at_random_moments_then_resume_reaches_the_same_weights(cache, tmp_path):
    import random

    overrides = ["optim.epochs=3", "train.checkpoint_steps=1"]
    reference = load_checkpoint(pretrain(tiny(*overrides), cache, tmp_path / "ref", progress=False))
    rng = random.Random(2)
    for trial in range(2):
        run = tmp_path / f"killed{trial}"
        cmd = [sys.executable, "-m", "s3t", "pretrain", "--data", str(cache), "--out", str(run), "--config",
               str(TINY), "--no-progress", "--set", *overrides]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(3.0, 9.0))  # start-up, mid-run or done: wherever it lands
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        final = load_checkpoint(run / "last.pt")
        assert final["progress"]["step"] == reference["progress"]["step"]
        for part in ("encoder", "method_state"):
            for key, value in reference[part].items():
                assert torch.equal(final[part][key], value), key


@pytest.fixture(scope="module")
def clip_cache(tmp_path_factory) -> Path:
    audio_dir = tmp_path_factory.mktemp("clip_audio")
    for i in range(3):
        write_music(audio_dir / f"song{i}.wav", seconds=9.0, seed=200 + i)
    write_music(audio_dir / "short.wav", seconds=1.0, seed=300)  # shorter than a clip: stays whole
    out = tmp_path_factory.mktemp("clip_cache")
    prepare(audio_dir, out, workers=0, clip_seconds=3.0, progress=False)
    return out


def test_native_crops_are_unresized_windows_and_short_items_loop(clip_cache):
    from s3t.config.schema import AugmentConfig
    from s3t.data.cache import open_cache
    from s3t.data.views import TwoCropDataset

    cache = open_cache(clip_cache)
    frames = 64
    data = TwoCropDataset(cache, list(range(len(cache))), frames, AugmentConfig(crop="native"), seed=0)
    for i in range(len(cache)):
        views, _ = data[(0, i)]
        assert views.shape == (2, 84, frames)
        whole = torch.from_numpy(np.array(cache[i], dtype=np.float32))  # (84, T)
        T = whole.shape[1]
        for view in views:
            if T >= frames:  # a window of the item, bit for bit
                assert any(torch.equal(view, whole[:, s : s + frames]) for s in range(T - frames + 1))
            else:  # looped
                assert torch.equal(view[:, :T], whole) and torch.equal(view[:, T : 2 * T], whole[:, : frames - T])


def test_track_positives_pair_clips_of_one_track(clip_cache):
    from s3t.config.schema import AugmentConfig
    from s3t.data.cache import open_cache
    from s3t.data.views import TwoCropDataset

    cache = open_cache(clip_cache)
    tracks = cache.column("track")
    data = TwoCropDataset(cache, list(range(len(cache))), 32, AugmentConfig(crop="native", positives="track"), 0)
    clip_of_view = {}
    for i in range(len(cache)):
        for epoch in range(6):
            views, group = data[(epoch, i)]
            assert group == data.groups[i]
            # the second view is a window of some clip of the same track
            sources = [j for j in range(len(cache)) if tracks[j] == tracks[i]
                       and _is_window(views[1], torch.from_numpy(np.array(cache[j], dtype=np.float32)))]
            assert sources, f"view of item {i} comes from no clip of its track"
            clip_of_view.setdefault(i, set()).update(sources)
    song_clips = [i for i in range(len(cache)) if tracks[i].startswith("song0")]
    assert len(song_clips) == 3 and any(clip_of_view[i] - {i} for i in song_clips)  # other clips are drawn


def _is_window(view: torch.Tensor, whole: torch.Tensor) -> bool:
    n, T = view.shape[1], whole.shape[1]
    return T >= n and any(torch.equal(view, whole[:, s : s + n]) for s in range(T - n + 1))


def test_each_pre_processor_sets_its_own_geometry():
    """The README's `--set model.preprocessor=freq_tile` once failed: `fold` (3) meant tile copies too."""
    from s3t.methods.registry import build_method
    from s3t.transforms.preprocess import model_input

    cfg = load_config(["cpu-small"], ["model.preprocessor=freq_tile"])
    assert cfg.model.segments == 4 and cfg.model.frames == 256  # ceil(256 / 84) copies of 256 frames
    assert model_input(torch.zeros(2, 84, 256), cfg.model).shape == (2, 1, 256, 256)
    assert load_config(["cpu-small"]).model.segments == 3 and load_config(["cpu-small"]).model.frames == 768
    build_method(load_config(["tiny"], ["model.preprocessor=freq_tile"]))
    # a geometry that does not fit fails when the model is built, with the numbers
    with pytest.raises(ValueError, match="2 copies of 84 bins give 168 rows, fewer than model.input_size 256"):
        build_method(load_config(["cpu-small"], ["model.preprocessor=freq_tile", "model.tile=2"]))
    with pytest.raises(ValueError, match="time_fold stacks 4 × 84 bins = 336 rows, more than model.input_size 256"):
        build_method(load_config(["cpu-small"], ["model.fold=4"]))
