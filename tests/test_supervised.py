"""The Supervised baseline as a real process: trained on the labels, scored end to end, then probed."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from audio_fixtures import write_labeled_music
from s3t.inference.load import load_encoder
from s3t.io.checkpoint import load_checkpoint
from s3t.models.backbones import build_encoder
from s3t.seeds import seed_of


@pytest.fixture(scope="module")
def labeled(tmp_path_factory):
    root = tmp_path_factory.mktemp("labeled")
    for label in (0, 1):
        for k in range(10):
            write_labeled_music(root / f"class{label}" / f"t{k}.wav", label, seed=label * 10 + k)
    return root


def test_supervised_learns_separable_classes_and_its_encoder_is_probed(labeled, tmp_path):
    out = tmp_path / "sup"
    run = subprocess.run([sys.executable, "-m", "s3t", "supervised", "--dataset", "folder", "--root", str(labeled),
                          "--out", str(out), "--config", "tiny", "--set", "model.name=crnn_small", "optim.epochs=10",
                          "optim.lr=1e-2", "train.batch_size=4", "probe.epochs=5", "--no-progress"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    log = list(csv.DictReader(open(out / "log.csv")))
    losses = [np.mean([float(r["loss"]) for r in log if int(r["epoch"]) == e]) for e in range(10)]  # per epoch
    assert len(log) == 30 and min(losses[-3:]) < 0.45 < losses[0]  # 12 train tracks / 4 = 3 steps; chance ln 2
    assert len([r for r in log if r["valid_score"]]) == 10  # read at the end of each epoch
    own = json.loads((out / "supervised_metrics.json").read_text())
    assert own["track"]["top1_accuracy"] >= 0.75  # tempo and drone pitch tell the classes apart
    assert "end to end (epoch" in run.stdout

    best = load_checkpoint(out / "best.pt")
    assert best["progress"]["epoch"] == own["best_epoch"] and best["meta"]["classes"] == ["class0", "class1"]
    assert best["method"] == "supervised" and set(best["method_state"]) == {"head.weight", "head.bias"}
    encoder = load_encoder(out / "best.pt")  # the pre-training checkpoint format
    torch.manual_seed(seed_of(0, 0))  # the weights the run started from
    start = build_encoder(encoder.model_cfg)
    assert not torch.equal(encoder.backbone.conv[0].weight, start.conv[0].weight)
    probe = json.loads((out / "linear-eval" / "metrics.json").read_text())
    assert probe["encoder"] == str(out / "best.pt") and 0.0 <= probe["track"]["top1_accuracy"]["mean"] <= 1.0


def test_supervised_resumes_from_its_last_checkpoint(labeled, tmp_path):
    """`s3t supervised --resume` once failed as soon as last.pt existed (not a readable checkpoint)."""
    from s3t.config.loading import load_config
    from s3t.data.datasets import load_folder
    from s3t.workflows.supervised import train_supervised

    cfg = load_config(["tiny"], ["model.name=crnn_small", "optim.epochs=2", "train.batch_size=4"])
    out = tmp_path / "sup"
    dataset = load_folder(labeled)
    first = train_supervised(dataset, cfg, out, workers=0, progress=False)
    weights = load_checkpoint(out / "last.pt")["encoder"]
    longer = load_config(["tiny"], ["model.name=crnn_small", "optim.epochs=3", "train.batch_size=4"])
    again = train_supervised(dataset, longer, out, workers=0, resume=True, progress=False)
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [int(r["epoch"]) for r in rows if r["valid_score"]] == [0, 1, 2]  # epochs 1-2 kept, the third trained
    assert load_checkpoint(out / "last.pt")["progress"]["epoch"] == 3 and first["best_epoch"] <= 2
    assert not torch.equal(load_checkpoint(out / "last.pt")["encoder"]["conv.0.weight"], weights["conv.0.weight"])
    assert "track" in again


def test_its_own_head_reads_the_trained_pooling_when_the_recipe_probes_rows(labeled, tmp_path):
    """With cpu-small's `model.readout=rows` the head (trained on the mean) once met rows features."""
    from s3t.config.loading import load_config
    from s3t.data.datasets import load_folder
    from s3t.workflows.supervised import train_supervised

    cfg = load_config(["tiny"], ["model.name=swin_nano", "model.readout=rows", "optim.epochs=1", "train.batch_size=4"])
    metrics = train_supervised(load_folder(labeled), cfg, tmp_path / "sup", workers=0, progress=False)
    assert 0.0 <= metrics["track"]["top1_accuracy"] <= 1.0
    assert load_encoder(tmp_path / "sup" / "best.pt").num_features > build_encoder(cfg.model).num_features  # rows
