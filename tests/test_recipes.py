"""The README's "Adding a backbone / a dataset" recipes, followed to the letter (the method recipe is
test_engine.py's `Bootstrap`): a backbone registered by `s3t.register_encoder` pre-trains, checkpoints and embeds; a new
entry in `LOADERS` is probed by `linear-eval`."""

import csv
from pathlib import Path

import numpy as np
import torch

import s3t
from audio_fixtures import write_labeled_music, write_music
from s3t.config.loading import load_config
from s3t.data.datasets import LOADERS, load_dataset
from s3t.data.labeled_set import Item, LabeledSet
from s3t.data.preparation import prepare
from s3t.models.backbones import ENCODERS

TINY = Path(__file__).parent.parent / "configs" / "tiny.yaml"


class TinyConv(torch.nn.Module):
    """The recipe's backbone: (B, 1, S, S) -> (B, D), `num_features`, `input_kind`."""

    input_kind = "spectrogram"

    def __init__(self, width: int):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Conv2d(1, width, 5, stride=4), torch.nn.ReLU(),
                                       torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.num_features = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_a_new_backbone_is_one_registry_entry(tmp_path, monkeypatch):
    from s3t.data.cache import open_cache
    from s3t.inference.features import extract_features
    from s3t.inference.load import load_encoder
    from s3t.workflows.pretrain import pretrain

    monkeypatch.setitem(ENCODERS, "tinyconv", None)  # the registry as it was, after the test

    @s3t.register_encoder("tinyconv")
    def build_tinyconv(model_cfg):
        return TinyConv(width=12)

    for i in range(8):
        write_music(tmp_path / "audio" / f"t{i}.wav", seconds=3.0, seed=i)
    prepare(tmp_path / "audio", tmp_path / "cache", workers=0, progress=False)
    cfg = load_config([TINY], ["model.name=tinyconv", "optim.epochs=1", "moco.queue_size=8"])
    last = pretrain(cfg, tmp_path / "cache", tmp_path / "run", progress=False)
    encoder = load_encoder(last)
    assert isinstance(encoder.backbone, TinyConv)
    features = extract_features(open_cache(tmp_path / "cache"), encoder, [0, 1], progress=False)
    assert features.shape == (2, 12) and np.isfinite(features).all()


def load_pairs(root: str | Path, seed: int = 0) -> LabeledSet:
    """The recipe's dataset: `pairs.csv` of (file, label, split) rows under ROOT."""
    root = Path(root)
    with open(root / "pairs.csv", newline="") as f:
        items = [Item(str(root / r["file"]), (r["label"],), r["split"]) for r in csv.DictReader(f)]
    return LabeledSet("pairs", sorted({i.labels[0] for i in items}), False, items, probe_batch=8)


def test_a_new_dataset_is_one_loader_and_linear_eval_takes_it(tmp_path, monkeypatch):
    from s3t.eval.linear_eval import linear_eval
    from s3t.inference.encoders import random_encoder

    monkeypatch.setitem(LOADERS, "pairs", load_pairs)
    rows = []
    for k in range(12):
        label = k % 2
        write_labeled_music(tmp_path / "data" / f"f{k}.wav", label, seed=k)
        rows.append((f"f{k}.wav", f"c{label}", "train" if k < 6 else "valid" if k < 8 else "test"))
    with open(tmp_path / "data" / "pairs.csv", "w", newline="") as f:
        csv.writer(f).writerows([("file", "label", "split"), *rows])
    dataset = load_dataset("pairs", tmp_path / "data")
    assert dataset.headline == ("top1_accuracy", "top5_accuracy")
    metrics = linear_eval(dataset, random_encoder(load_config([TINY]).model), tmp_path / "probe",
                          load_config([], ["probe.epochs=2"]).probe, workers=0, progress=False)
    assert metrics["dataset"] == "pairs" and "batch 8" in metrics["protocol"]["optimizer"]
    assert metrics["counts"]["test"] == 4 and 0.0 <= metrics["track"]["top1_accuracy"]["mean"] <= 1.0
