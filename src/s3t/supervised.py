"""`s3t supervised`: the paper's "Supervised" row — the same encoder trained end to end on the labels.

One random crop per item (the pre-training crop ratio), the same spectrogram augmentations, a
linear head, cross-entropy (classes) or binary cross-entropy (tags), AdamW with warm-up and
cosine decay, through the training loop every method shares (`s3t.engine`). The epoch with the
best validation score is kept as `best.pt`, a checkpoint of the one schema, so `load_encoder` and
the linear probe read it like any other encoder.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from s3t import augment
from s3t.cache import Cache
from s3t.checkpoint import load_checkpoint
from s3t.config import Config
from s3t.datasets import LabeledSet
from s3t.encoder import Encoder, extract_features, load_encoder
from s3t.engine import EpochCheck, fit, seed_of
from s3t.evaluate import score_test_split
from s3t.files import write_json
from s3t.labelled import LabelledData
from s3t.methods import Method
from s3t.models import build_encoder
from s3t.preprocess import model_input
from s3t.probe import validation_score


class Head:
    """The trained linear head on the frozen encoder's features, as a probe: features -> probabilities."""

    def __init__(self, layer: torch.nn.Linear, multilabel: bool):
        self.layer, self.multilabel = layer, multilabel

    @torch.no_grad()
    def scores(self, features: np.ndarray) -> np.ndarray:
        logits = self.layer(torch.as_tensor(np.asarray(features), dtype=torch.float32))
        return (torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)).numpy()


class LabelledCrops(torch.utils.data.Dataset):
    """One random crop per cached item (the pre-training crop ratio, resized to the input frames),
    (84, frames), with its target: a class index or a multi-hot tag vector."""

    def __init__(self, cache: Cache, indices: list[int], targets: torch.Tensor, frames: int,
                 crop_ratio: tuple[float, float], seed: int):
        self.cache, self.indices, self.targets = cache, indices, targets
        self.frames, self.crop_ratio, self.seed = frames, crop_ratio, seed

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, i = key
        item = self.indices[i]
        gen = torch.Generator().manual_seed(seed_of(self.seed, epoch, item))
        ((start, n),) = augment.sample_crop_windows(int(self.cache.frames[item]), self.crop_ratio, 1, gen)
        return augment.resized_crop(partial(self.cache.frames_at, item), start, n, self.frames), self.targets[i]


class Supervised(Method):
    """The encoder and a linear head trained end to end: cross-entropy over classes, or binary
    cross-entropy over tags, on augmented crops."""

    name = "supervised"

    def __init__(self, encoder: torch.nn.Module, classes: int, multilabel: bool, config: Config):
        super().__init__()
        self.encoder, self.head = encoder, torch.nn.Linear(encoder.num_features, classes)
        self.multilabel, self.config = multilabel, config

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor], gen: torch.Generator
                ) -> tuple[torch.Tensor, dict[str, float]]:
        crops, target = batch  # (B, 84, frames), (B,) or (B, tags)
        x = model_input(augment.augment_batch(crops, self.config.augment, gen), self.config.model)
        logits = self.head(self.encoder(x))
        if self.multilabel:
            return F.binary_cross_entropy_with_logits(logits, target), {}
        return F.cross_entropy(logits, target), {}


def train_supervised(dataset: LabeledSet, cfg: Config, out: str | Path, label_fraction: float = 1.0, seed: int = 0,
                     cache_dir: str | Path | None = None, clip_seconds: float = 0.0, workers: int = 2,
                     resume: bool = False, progress: bool = True) -> dict:
    """Train `cfg.model` on `dataset`'s labels for `cfg.optim.epochs` (`seed` replaces `train.seed`); write
    best.pt (the epoch with the best validation score), last.pt, log.csv and supervised_metrics.json
    (the test score of the end-to-end model) to `out`; return those metrics."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = LabelledData.prepare(dataset, out, cache_dir, 1, clip_seconds, workers, progress)
    train = data.train_subset(label_fraction, seed)
    cfg = replace(cfg, train=replace(cfg.train, seed=seed, batch_size=min(cfg.train.batch_size, len(train))))
    torch.manual_seed(seed_of(seed, 0))
    method = Supervised(build_encoder(cfg.model), len(dataset.classes), dataset.multilabel, cfg)
    crops = LabelledCrops(data.cache, data.indices(train), torch.as_tensor(data.targets(train)), cfg.model.frames,
                          cfg.augment.crop_ratio, seed)
    y_valid = data.targets(data.rows["valid"])

    def validation(m: Supervised) -> dict[str, float]:
        frozen = Encoder(copy.deepcopy(m.encoder), cfg.model, name="supervised")  # Encoder freezes what it wraps
        scores = Head(copy.deepcopy(m.head).cpu(), dataset.multilabel).scores(_features(frozen, data, "valid"))
        return {"valid_score": validation_score(scores, y_valid, dataset.multilabel)}

    fit(method, crops, cfg, out, resume=resume, progress=progress, cache_meta=data.cache.meta,
        check=EpochCheck(validation, ("valid_score",), select="valid_score"),
        meta={"classes": dataset.classes, "dataset": dataset.name})
    return _test(out, data)


def _features(encoder: Encoder, data: LabelledData, split: str) -> np.ndarray:
    """Frozen-encoder features of a split's cache entries, as the linear probe sees them."""
    return extract_features(data.cache, encoder, data.indices(data.rows[split]), progress=False)


def _test(out: Path, data: LabelledData) -> dict:
    """The end-to-end test score of best.pt (its own head), written to supervised_metrics.json."""
    state = load_checkpoint(out / "best.pt")
    encoder = load_encoder(out / "best.pt")
    dataset, test = data.dataset, data.rows["test"]
    layer = torch.nn.Linear(encoder.num_features, len(dataset.classes))
    layer.load_state_dict({k[len("head."):]: v for k, v in state["method_state"].items()})
    metrics = score_test_split(dataset, Head(layer, dataset.multilabel), _features(encoder, data, "test"),
                               data.targets(test), test, data.clips)
    metrics = {"dataset": dataset.name, "best_epoch": state["progress"]["epoch"], **metrics}
    write_json(out / "supervised_metrics.json", metrics, indent=2, default=lambda v: v.item())
    return metrics
