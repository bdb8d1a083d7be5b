"""`s3t supervised`: the paper's "Supervised" row — the same encoder trained end to end on the labels.

One random crop per item (the pre-training crop ratio), the same spectrogram augmentations, a
linear head, cross-entropy (classes) or binary cross-entropy (tags), AdamW with warm-up and
cosine decay. The epoch with the best validation score is kept as `best.pt`, a checkpoint in the
pre-training format, so `load_encoder` and the linear probe read it like any other encoder.
One process (no DDP): the labelled sets of the paper are small.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from s3t import __version__, augment
from s3t.cache import Cache
from s3t.checkpoint import load_checkpoint, save_checkpoint
from s3t.config import Config, save_config
from s3t.datasets import LabeledSet
from s3t.encoder import Encoder, extract_features, load_encoder
from s3t.evaluate import label_subset, prepare_dataset, score_test_split, split_rows, targets_of
from s3t.files import append_csv_row, write_json
from s3t.models import build_encoder
from s3t.preprocess import input_frames
from s3t.probe import validation_score, warmup_cosine
from s3t.train import model_input, seed_of

log = logging.getLogger(__name__)

LOG_FIELDS = ["epoch", "train_loss", "valid_score", "lr", "elapsed_s"]


class Head:
    """The trained linear head on the frozen encoder's features, as a probe: features -> probabilities."""

    def __init__(self, layer: torch.nn.Linear, multilabel: bool):
        self.layer, self.multilabel = layer, multilabel

    @torch.no_grad()
    def scores(self, features: np.ndarray) -> np.ndarray:
        logits = self.layer(torch.as_tensor(np.asarray(features), dtype=torch.float32))
        return (torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)).numpy()


def train_supervised(dataset: LabeledSet, cfg: Config, out: str | Path, label_fraction: float = 1.0, seed: int = 0,
                     cache_dir: str | Path | None = None, clip_seconds: float = 0.0, workers: int = 2,
                     resume: bool = False, progress: bool = True) -> dict:
    """Train `cfg.model` on `dataset`'s labels for `cfg.optim.epochs`; write best.pt, last.pt, log.csv and
    supervised_metrics.json (the test score of the end-to-end model) to `out`; return those metrics."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dataset, cache, _ = prepare_dataset(dataset, out, cache_dir, time_compression=1, clip_seconds=clip_seconds,
                                        workers=workers, progress=progress)
    rows = split_rows(dataset, cache, clip_seconds)
    by_path = {item.path: item for item in dataset.items}
    keep = label_subset(dataset, sorted({t for _, t in rows["train"]}), label_fraction, seed)
    train = [(cache.index_of(cid), track) for cid, track in rows["train"] if track in keep]
    y_train = torch.as_tensor(targets_of(dataset, [by_path[t] for _, t in train]))

    device = torch.device("cuda" if cfg.train.device in ("cuda", "auto") and torch.cuda.is_available() else "cpu")
    torch.manual_seed(seed_of(seed, 0))
    encoder = build_encoder(cfg.model).to(device)
    head = torch.nn.Linear(encoder.num_features, len(dataset.classes)).to(device)
    params = [p for p in [*encoder.parameters(), *head.parameters()] if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    batch = min(cfg.train.batch_size, len(train))
    steps_per_epoch = max(1, len(train) // batch)
    base_lr = cfg.optim.lr * batch / cfg.optim.lr_batch
    frames = input_frames(cfg.model.preprocessor, cfg.model.input_size, cfg.model.segments)
    save_config(cfg, out / "config.yaml")

    epoch, best = 0, -math.inf
    if resume and (out / "last.pt").exists():
        state = load_checkpoint(out / "last.pt")
        encoder.load_state_dict(state["model"])
        head.load_state_dict(state["head"])
        opt.load_state_dict(state["optimizer"])
        epoch, best = state["epoch"], state["best"]
        log.info("resumed %s at epoch %d", out / "last.pt", epoch)
    start = time.perf_counter()
    gen, aug_gen = torch.Generator(), torch.Generator(device=device)  # crops, augmentations
    for epoch in range(epoch, cfg.optim.epochs):
        encoder.train()
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed_of(seed, epoch, 1)))
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"supervised epoch {epoch}", disable=not progress, unit="batch")
        for step in bar:
            lr = warmup_cosine(epoch + step / steps_per_epoch, cfg.optim.epochs, cfg.optim.warmup_epochs, base_lr)
            for group in opt.param_groups:
                group["lr"] = lr
            picked = order[step * batch : (step + 1) * batch]
            gen.manual_seed(seed_of(seed, epoch, step, 2))
            aug_gen.manual_seed(seed_of(seed, epoch, step, 3))
            x = _crops(cache, [train[i][0] for i in picked], frames, cfg, gen).to(device)
            logits = head(encoder(model_input(augment.augment_batch(x, cfg.augment, aug_gen), cfg)))
            target = y_train[picked].to(device)
            loss = (F.binary_cross_entropy_with_logits(logits, target) if dataset.multilabel
                    else F.cross_entropy(logits, target))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{lr:.2e}")
        frozen = Encoder(copy.deepcopy(encoder), cfg.model, name="supervised")  # Encoder freezes what it wraps
        valid = validation_score(Head(head.cpu(), dataset.multilabel).scores(_features(frozen, cache, rows["valid"])),
                                 targets_of(dataset, [by_path[t] for _, t in rows["valid"]]), dataset.multilabel)
        append_csv_row(out / "log.csv", LOG_FIELDS, [epoch + 1, float(np.mean(losses)), valid, lr,
                                                      time.perf_counter() - start])
        head.to(device)
        if valid > best:
            best = valid
            save_checkpoint(out / "best.pt", _pretrain_format(encoder, head, cfg, cache, epoch + 1, dataset))
        save_checkpoint(out / "last.pt", {"config": cfg.to_dict(), "model": encoder.state_dict(),
                                          "head": head.state_dict(), "optimizer": opt.state_dict(),
                                          "epoch": epoch + 1, "best": best})
        log.info("epoch %d: train loss %.4f, validation %.4f (best %.4f)", epoch + 1, np.mean(losses), valid, best)
    return _test(out, dataset, cache, rows, clip_seconds)


def _crops(cache: Cache, indices: list[int], frames: int, cfg: Config, gen: torch.Generator) -> torch.Tensor:
    """One random crop per item, resized to the model's input frames: (B, 84, frames)."""
    crops = []
    for i in indices:
        ((start, n),) = augment.sample_crop_windows(int(cache.frames[i]), cfg.augment.crop_ratio, 1, gen)
        crop = torch.from_numpy(np.array(cache.crop(i, start, n), dtype=np.float32))
        crops.append(augment.resize_time(crop, frames))
    return torch.stack(crops)


def _features(encoder: Encoder, cache: Cache, rows: list[tuple[str, str]]) -> np.ndarray:
    """Frozen-encoder features of the rows' cache entries, as the linear probe sees them."""
    return extract_features(cache, encoder, [cache.index_of(cid) for cid, _ in rows], progress=False)


def _pretrain_format(encoder: torch.nn.Module, head: torch.nn.Linear, cfg: Config, cache: Cache, epoch: int,
                     dataset: LabeledSet) -> dict:
    """A checkpoint `load_encoder` reads (encoder weights under `encoder_q.`), with the head beside."""
    return {"version": __version__, "config": cfg.to_dict(), "epoch": epoch, "cache_meta": cache.meta,
            "model": {f"encoder_q.{k}": v for k, v in encoder.state_dict().items()},
            "head": head.state_dict(), "classes": dataset.classes, "dataset": dataset.name}


def _test(out: Path, dataset: LabeledSet, cache: Cache, rows: dict, clip_seconds: float) -> dict:
    """The end-to-end test score of best.pt (its own head), written to supervised_metrics.json."""
    state = load_checkpoint(out / "best.pt")
    encoder = load_encoder(out / "best.pt")
    layer = torch.nn.Linear(encoder.num_features, len(dataset.classes))
    layer.load_state_dict(state["head"])
    by_path = {item.path: item for item in dataset.items}
    y_test = targets_of(dataset, [by_path[t] for _, t in rows["test"]])
    metrics = score_test_split(dataset, Head(layer, dataset.multilabel), _features(encoder, cache, rows["test"]),
                               y_test, rows["test"], clip_seconds > 0)
    metrics = {"dataset": dataset.name, "best_epoch": state["epoch"], **metrics}
    write_json(out / "supervised_metrics.json", metrics, indent=2, default=lambda v: v.item())
    return metrics

