"""`s3t export` and `from_pretrained`: a pickle-free folder that gives bit-identical features, and refuses tampering."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from audio_fixtures import write_music
from s3t.config.loading import load_config
from s3t.data.cache import open_cache
from s3t.data.preparation import prepare
from s3t.inference.features import extract_features
from s3t.inference.load import from_pretrained, load_encoder
from s3t.io.checkpoint import CheckpointError
from s3t.io.export_folder import export
from s3t.workflows.pretrain import pretrain

TINY = Path(__file__).parent.parent / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    audio = tmp_path_factory.mktemp("export_audio")
    for i in range(8):
        write_music(audio / f"t{i}.wav", seconds=3.0, seed=i)
    cache = tmp_path_factory.mktemp("export_cache")
    prepare(audio, cache, workers=0, progress=False)
    out = tmp_path_factory.mktemp("export_run")
    pretrain(load_config([TINY], ["optim.epochs=1", "moco.queue_size=8"]), cache, out, progress=False)
    (out / "probe").mkdir()
    (out / "probe" / "metrics.json").write_text(json.dumps({"track": {"top1_accuracy": {"mean": 0.75, "std": 0.0}}}))
    return out / "last.pt", cache


def test_export_round_trip_gives_bit_identical_features(run, tmp_path):
    checkpoint, cache = run
    folder = export(checkpoint, tmp_path / "enc", licence="CC-BY-4.0")
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors", "README.md"}
    original, exported = load_encoder(checkpoint), from_pretrained(folder)
    assert exported.fingerprint() == original.fingerprint()  # a probe trained on one predicts with the other
    items = open_cache(cache)
    a = extract_features(items, original, [0, 1, 2], progress=False)
    b = extract_features(items, load_encoder(folder), [0, 1, 2], progress=False)  # --checkpoint takes the folder
    assert np.array_equal(a, b)
    card = (folder / "README.md").read_text()
    assert "license: CC-BY-4.0" in card and "swin_nano" in card and "track top1_accuracy 0.7500" in card


def test_two_exports_of_one_checkpoint_are_the_same_bytes(run, tmp_path):
    a, b = (export(run[0], tmp_path / name) / "model.safetensors" for name in ("a", "b"))
    assert a.read_bytes() == b.read_bytes()


def test_the_folder_needs_no_pickle_and_no_s3t(run, tmp_path):
    folder = export(run[0], tmp_path / "enc")
    config = json.loads((folder / "config.json").read_text())
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    encoder = load_encoder(run[0])
    assert config["config"]["model"]["name"] == "swin_nano"
    assert tensors.keys() == encoder.backbone.state_dict().keys()
    assert all(torch.equal(tensors[k], v) for k, v in encoder.backbone.state_dict().items())


def test_a_tampered_folder_is_refused(run, tmp_path):
    folder = export(run[0], tmp_path / "enc")
    config = json.loads((folder / "config.json").read_text())
    config["config"]["model"]["drop_path"] = 0.3
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="config or cache_meta differ"):
        from_pretrained(folder)
    folder = export(run[0], tmp_path / "enc2")
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-10] ^= 0x01
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="weights were changed after export"):
        from_pretrained(folder)
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError, match="not an exported S3T encoder"):
        from_pretrained(folder)


def test_export_and_embed_from_the_cli(run, tmp_path):
    s3t = [sys.executable, "-m", "s3t"]
    done = subprocess.run([*s3t, "export", str(run[0]), str(tmp_path / "enc"), "--onnx"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "enc" / "encoder.onnx").stat().st_size > 0  # its numbers: tests/test_onnx.py
    embed = subprocess.run([*s3t, "embed", str(run[1]), "--checkpoint", str(tmp_path / "enc"), "--out",
                            str(tmp_path / "f.npz"), "--no-progress"], capture_output=True, text=True, timeout=300)
    assert embed.returncode == 0, embed.stderr
    assert np.load(tmp_path / "f.npz")["features"].shape == (8, 192)


def test_a_checkpoint_is_read_out_another_way_from_the_cli_but_keeps_its_model(run, tmp_path):
    s3t = [sys.executable, "-m", "s3t", "embed", str(run[1]), "--checkpoint", str(run[0]), "--no-progress"]
    rows = subprocess.run([*s3t, "--out", str(tmp_path / "rows.npz"), "--set", "model.readout=rows"],
                          capture_output=True, text=True, timeout=300)
    assert rows.returncode == 0, rows.stderr
    assert np.load(tmp_path / "rows.npz")["features"].shape == (8, 192 * 4)  # 128 / 4 / 2^3 = 4 frequency rows
    rebuilt = subprocess.run([*s3t, "--out", str(tmp_path / "no.npz"), "--set", "model.name=swin_mini"],
                             capture_output=True, text=True, timeout=300)
    assert rebuilt.returncode != 0 and not (tmp_path / "no.npz").exists()
    assert "only model.readout, model.embedding, model.short can be set" in rebuilt.stderr
