"""Learning you can watch: during pre-training, probe the encoder being trained on a labeled
validation set every few epochs (as DINO and solo-learn do), so that "is it learning?" is answered
during the run. Two readings: a weighted k-NN classifier (DINO's: cosine similarity, k = 20,
temperature 0.07) and the linear-eval probe, both fit on the set's train split and scored on its
validation split; the test split is never touched.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from s3t.config.schema import ModelConfig, ProbeConfig
from s3t.data.cache import Cache
from s3t.data.datasets import load_dataset
from s3t.data.labeled_cache import LabeledCache
from s3t.eval.probe import train_probe
from s3t.inference.encoders import Encoder
from s3t.inference.features import extract_features

log = logging.getLogger(__name__)


@dataclass
class Monitor:
    """A labeled set's cached train (the bank) and validation (the queries) items, single-label."""

    name: str
    cache: Cache
    bank: list[int]  # cache indices
    bank_labels: np.ndarray  # (N,) class ids
    queries: list[int]
    query_labels: np.ndarray  # (M,)
    classes: list[str]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def features(self, backbone: torch.nn.Module, model_cfg: ModelConfig, time_compression: int
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Features of the bank's then the queries' items (N + M, D) by a copy of `backbone` (left as it is)."""
        encoder = Encoder(copy.deepcopy(backbone), model_cfg, time_compression, name="monitor")
        return extract_features(self.cache, encoder, self.bank + self.queries, progress=False), \
            np.concatenate([self.bank_labels, self.query_labels])

    def measure(self, backbone: torch.nn.Module, model_cfg: ModelConfig, time_compression: int) -> dict[str, float]:
        """k-NN and linear-probe top-1 on the validation split for a copy of `backbone` (left as it is)."""
        features, _ = self.features(backbone, model_cfg, time_compression)
        bank, queries = features[: len(self.bank)], features[len(self.bank) :]
        return {"knn_top1": knn_top1(bank, self.bank_labels, queries, self.query_labels, self.n_classes),
                "probe_top1": probe_top1(bank, self.bank_labels, queries, self.query_labels, self.n_classes)}


def knn_top1(bank: np.ndarray, bank_labels: np.ndarray, queries: np.ndarray, query_labels: np.ndarray,
             n_classes: int, k: int = 20, temperature: float = 0.07) -> float:
    """Top-1 of a weighted k-NN vote (weights exp(cos / T)) of each query among the bank: DINO's monitor."""
    b = F.normalize(torch.as_tensor(bank, dtype=torch.float32), dim=1)  # (N, D)
    q = F.normalize(torch.as_tensor(queries, dtype=torch.float32), dim=1)  # (M, D)
    sims, idx = (q @ b.T).topk(min(k, len(b)), dim=1)  # (M, k)
    votes = torch.zeros(len(q), n_classes).scatter_add_(
        1, torch.as_tensor(bank_labels)[idx], (sims / temperature).exp())  # (M, C)
    return float((votes.argmax(1).numpy() == query_labels).mean())


def probe_top1(bank: np.ndarray, bank_labels: np.ndarray, queries: np.ndarray, query_labels: np.ndarray,
               n_classes: int) -> float:
    """Validation top-1 of the linear-eval probe fit on the bank (its last epoch: nothing to select on)."""
    probe = train_probe(bank, bank_labels, queries[:0], query_labels[:0], n_classes, False, ProbeConfig(), 64)
    return float((probe.scores(queries).argmax(1) == query_labels).mean())


def build_monitor(kind: str, root: str | Path, out: str | Path, time_compression: int, clip_seconds: float,
                  workers: int = 2, progress: bool = True) -> Monitor:
    """A Monitor on dataset `kind` at `root`, its audio prepared into `out` like the training cache."""
    dataset = load_dataset(kind, root)
    if dataset.multilabel:
        raise ValueError(f"--monitor needs single-label data; {kind} at {root} is multi-label")
    data = LabeledCache.prepare(dataset, Path(out), None, time_compression, clip_seconds, workers, progress)
    bank, queries = data.rows["train"], data.rows["valid"]
    log.info("monitor: %s, %d train and %d validation items", dataset.name, len(bank), len(queries))
    return Monitor(dataset.name, data.cache, data.indices(bank), data.targets(bank), data.indices(queries),
                   data.targets(queries), list(data.dataset.classes))
