"""The starter weights the package ships: the recorded file, loaded without pickle, and the defaults that
use them (`s3t.load_encoder()`, `s3t embed` and `s3t linear-eval` without --checkpoint)."""

import hashlib
import pickle

import numpy as np

import s3t
from audio_fixtures import synth_music, write_audio
from s3t.cli import main as cli
from s3t.cli.commands import encoder_choice
from s3t.cli.parser import build_parser
from s3t.inference.load import STARTER

# data/starter/build.sh writes it; a new file must come with its new hash here and in its model card
STARTER_SHA256 = "81ca69fb440e23f7b4e98f4c530b19f7d486f4dfc3b8074f2ad3afe03da02e83"


def test_the_shipped_weights_are_the_recorded_file_and_small():
    weights = STARTER / "model.safetensors"
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == STARTER_SHA256
    assert weights.stat().st_size <= 10 * 2**20
    assert STARTER_SHA256 in (STARTER / "README.md").read_text()


def test_the_starter_loads_without_pickle_and_embeds(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the starter weights must load without pickle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    encoder = s3t.load_encoder()
    assert encoder.model_cfg.name == "resnet_small" and encoder.num_features == 2048
    wave = synth_music(3.0, seed=1)
    features = s3t.embed([wave, wave[::-1].copy()], encoder)
    assert features.shape == (2, 2048) and np.isfinite(features).all()
    assert not np.allclose(features[0], features[1])


def test_commands_without_checkpoint_or_encoder_use_the_starter():
    args = build_parser().parse_args(["linear-eval", "--dataset", "csv", "--root", "m.csv", "--out", "o"])
    assert encoder_choice(args).checkpoint == str(STARTER)
    args = build_parser().parse_args(["linear-eval", "--dataset", "csv", "--root", "m.csv", "--out", "o",
                                      "--encoder", "random"])
    assert encoder_choice(args).checkpoint is None


def test_embed_frames_with_no_checkpoint_gives_each_track_its_timestamped_frames(tmp_path):
    for i, seconds in enumerate([2.0, 3.0]):
        write_audio(tmp_path / "music" / f"song{i}.wav", synth_music(seconds, seed=i))
    out = tmp_path / "frames.npz"
    assert cli(["embed", str(tmp_path / "music"), "--frames", "--out", str(out), "--workers", "0",
                "--no-progress"]) == 0
    with np.load(out) as f:
        assert list(f["track_ids"]) == ["song0.wav", "song1.wav"]
        hop = float(f["hop_seconds"])
        assert abs(hop - 2 * 512 / 22050) < 1e-9
        for i, seconds in enumerate([2.0, 3.0]):
            stamps, feats = f[f"timestamps_{i}"], f[f"features_{i}"]
            assert feats.shape == (len(stamps), 2048) and feats.dtype == np.float32
            assert stamps[0] == 0 and seconds - hop < stamps[-1] <= seconds
