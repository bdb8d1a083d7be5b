"""`s3t supervised`: the paper's "Supervised" row — the same encoder trained end to end on the labels.

One random crop per item (the pre-training crop ratio), the same spectrogram augmentations, a
linear head, cross-entropy (classes) or binary cross-entropy (tags), AdamW with warm-up and
cosine decay, through the training loop every method shares (`s3t.training.engine`). The epoch with the
best validation score is kept as `best.pt`, a checkpoint of the one schema, so `load_encoder` and
the linear probe read it like any other encoder.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from s3t.config.schema import Config
from s3t.data.labeled_cache import LabeledCache
from s3t.data.labeled_set import LabeledSet
from s3t.data.views import LabeledCrops
from s3t.eval.linear_eval import linear_eval, score_test_split
from s3t.eval.probe import Probe, validation_score
from s3t.inference.encoders import Encoder
from s3t.inference.features import extract_features
from s3t.inference.load import load_encoder
from s3t.io.checkpoint import load_checkpoint
from s3t.io.files import write_json
from s3t.methods.supervised import Supervised
from s3t.models.backbones import build_encoder
from s3t.seeds import seed_of
from s3t.training.engine import EpochCheck, fit


def head_probe(layer: torch.nn.Linear, multilabel: bool) -> Probe:
    """The trained linear head, as a probe on the frozen encoder's unscaled features."""
    dim = layer.in_features
    return Probe(layer.weight.detach(), layer.bias.detach(), torch.zeros(dim), torch.ones(dim), multilabel)


def train_supervised(dataset: LabeledSet, cfg: Config, out: str | Path, label_fraction: float = 1.0, seed: int = 0,
                     cache_dir: str | Path | None = None, clip_seconds: float = 0.0, workers: int = 2,
                     resume: bool = False, progress: bool = True) -> dict:
    """Train `cfg.model` on `dataset`'s labels for `cfg.optim.epochs` (`seed` replaces `train.seed`); write
    best.pt (the epoch with the best validation score), last.pt, log.csv and supervised_metrics.json
    (the test score of the end-to-end model) to `out`; return those metrics."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = LabeledCache.prepare(dataset, out, cache_dir, 1, clip_seconds, workers, progress)
    train = data.train_subset(label_fraction, seed)
    cfg = replace(cfg, train=replace(cfg.train, seed=seed, batch_size=min(cfg.train.batch_size, len(train))))
    torch.manual_seed(seed_of(seed, 0))
    method = Supervised(build_encoder(cfg.model), len(dataset.classes), dataset.multilabel, cfg)
    crops = LabeledCrops(data.cache, data.indices(train), torch.as_tensor(data.targets(train)), cfg.model.frames,
                          cfg.augment.crop_ratio, seed)
    y_valid = data.targets(data.rows["valid"])

    def validation(m: Supervised) -> dict[str, float]:
        # its own head reads the pooling it was trained on, whatever readout the recipe probes with
        model_cfg = replace(cfg.model, readout="")
        frozen = Encoder(copy.deepcopy(m.encoder), model_cfg, name="supervised")  # Encoder freezes what it wraps
        scores = head_probe(copy.deepcopy(m.head).cpu(), dataset.multilabel).scores(_features(frozen, data, "valid"))
        return {"valid_score": validation_score(scores, y_valid, dataset.multilabel)}

    fit(method, crops, cfg, out, resume=resume, progress=progress, cache_meta=data.cache.meta,
        check=EpochCheck(validation, ("valid_score",), select="valid_score"),
        meta={"classes": dataset.classes, "dataset": dataset.name})
    return _test(out, data)


def supervised_then_probe(dataset: LabeledSet, cfg: Config, out: str | Path, label_fraction: float = 1.0,
                          seed: int = 0, probe_seeds: int = 1, cache_dir: str | Path | None = None,
                          clip_seconds: float = 0.0, workers: int = 2, resume: bool = False,
                          progress: bool = True) -> tuple[dict, dict]:
    """`s3t supervised`: train end to end (`train_supervised`), then linear-probe the frozen best.pt like any
    other encoder into `out`/linear-eval; returns the end-to-end metrics and the probe's."""
    cache_dir = cache_dir or Path(out) / "cache"
    own = train_supervised(dataset, cfg, out, label_fraction=label_fraction, seed=seed, cache_dir=cache_dir,
                           clip_seconds=clip_seconds, workers=workers, resume=resume, progress=progress)
    probed = linear_eval(dataset, load_encoder(Path(out) / "best.pt"), Path(out) / "linear-eval", cfg.probe,
                         label_fraction=label_fraction, seeds=probe_seeds, cache_dir=cache_dir,
                         clip_seconds=clip_seconds, workers=workers, progress=progress)
    return own, probed


def _features(encoder: Encoder, data: LabeledCache, split: str) -> np.ndarray:
    """Frozen-encoder features of a split's cache entries, as the linear probe sees them."""
    return extract_features(data.cache, encoder, data.indices(data.rows[split]), progress=False)


def _test(out: Path, data: LabeledCache) -> dict:
    """The end-to-end test score of best.pt (its own head), written to supervised_metrics.json."""
    state = load_checkpoint(out / "best.pt")
    encoder = load_encoder(out / "best.pt", readout=(f"model.readout={state['config']['model']['pooling']}",))
    dataset, test = data.dataset, data.rows["test"]
    layer = torch.nn.Linear(encoder.num_features, len(dataset.classes))
    layer.load_state_dict({k[len("head."):]: v for k, v in state["method_state"].items()})
    metrics = score_test_split(dataset, head_probe(layer, dataset.multilabel), _features(encoder, data, "test"),
                               data.targets(test), test, data.clips)
    metrics = {"dataset": dataset.name, "best_epoch": state["progress"]["epoch"], **metrics}
    write_json(out / "supervised_metrics.json", metrics, indent=2, default=lambda v: v.item())
    return metrics
