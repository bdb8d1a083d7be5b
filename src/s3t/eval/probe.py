"""The linear probe: one linear layer on frozen features, trained with the paper's recipe,
its epoch chosen on validation, and the metrics of the paper (scikit-learn)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score

from s3t.config.schema import ProbeConfig
from s3t.training.schedule import warmup_cosine


@dataclass
class Probe:
    """A trained linear layer with the feature scaling it expects: features (N, D) -> scores (N, C)."""

    weight: torch.Tensor  # (C, D)
    bias: torch.Tensor  # (C,)
    mean: torch.Tensor  # (D,)
    std: torch.Tensor  # (D,)
    multilabel: bool
    epoch: int = 0  # the epoch chosen on validation
    history: list[dict] = field(default_factory=list)  # per epoch: train loss, validation score

    def scores(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        """Class probabilities (softmax) or tag probabilities (sigmoid), (N, C)."""
        x = (torch.as_tensor(np.asarray(features), dtype=torch.float32) - self.mean) / self.std
        logits = x @ self.weight.T + self.bias
        return (torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)).numpy()

    def state(self) -> dict:
        return {"weight": self.weight, "bias": self.bias, "mean": self.mean, "std": self.std,
                "multilabel": self.multilabel, "epoch": self.epoch}

    @classmethod
    def from_state(cls, state: dict) -> Probe:
        return cls(state["weight"], state["bias"], state["mean"], state["std"], bool(state["multilabel"]),
                   int(state["epoch"]))


def validation_score(scores: np.ndarray, targets: np.ndarray, multilabel: bool) -> float:
    """What picks the epoch: accuracy (single-label) or macro ROC-AUC (multi-label)."""
    if multilabel:
        return roc_auc_macro(targets, scores)
    return float((scores.argmax(1) == targets).mean())


def train_probe(x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray,
                n_classes: int, multilabel: bool, cfg: ProbeConfig, batch_size: int, seed: int = 0) -> Probe:
    """Fit a linear layer (AdamW, warm-up + cosine) on features (N, D) with labels (N,) class ids
    or (N, C) 0/1 tags; keep the epoch with the best validation score (the last on ties)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(x_train, dtype=torch.float32)
    y = torch.as_tensor(y_train, dtype=torch.float32 if multilabel else torch.long)
    mean = x.mean(0) if cfg.standardize else torch.zeros(x.shape[1])
    std = x.std(0).clamp_min(1e-6) if cfg.standardize and len(x) > 1 else torch.ones(x.shape[1])
    layer = torch.nn.Linear(x.shape[1], n_classes)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * 0.01)
        layer.bias.zero_()
    opt = torch.optim.AdamW(layer.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = F.binary_cross_entropy_with_logits if multilabel else F.cross_entropy
    xs = (x - mean) / std
    steps = max(1, math.ceil(len(xs) / batch_size))
    best = Probe(layer.weight.detach().clone(), layer.bias.detach().clone(), mean, std, multilabel, 0)
    best_score = -math.inf
    history = []
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(xs), generator=gen)
        total = 0.0
        for k in range(steps):
            for group in opt.param_groups:
                group["lr"] = warmup_cosine(epoch + k / steps, cfg.epochs, cfg.warmup_epochs, cfg.lr)
            idx = order[k * batch_size : (k + 1) * batch_size]
            loss = loss_fn(layer(xs[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        candidate = Probe(layer.weight.detach().clone(), layer.bias.detach().clone(), mean, std, multilabel,
                          epoch + 1)
        score = validation_score(candidate.scores(x_valid), y_valid, multilabel) if len(x_valid) else -total
        history.append({"epoch": epoch + 1, "train_loss": total / len(xs), "valid_score": score})
        if score >= best_score:
            best, best_score = candidate, score
    best.history = history
    return copy.copy(best)


def roc_auc_macro(targets: np.ndarray, scores: np.ndarray) -> float:
    """Macro ROC-AUC over the tags that have both positives and negatives."""
    ok = _scorable(targets)
    return float(roc_auc_score(targets[:, ok], scores[:, ok], average="macro")) if ok.any() else float("nan")


def _scorable(targets: np.ndarray) -> np.ndarray:
    positives = targets.sum(0)
    return (positives > 0) & (positives < len(targets))


def top_k_accuracy(targets: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Fraction of items whose class is among their k highest scores (1.0 when k >= classes)."""
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((top == targets[:, None]).any(1).mean())


def single_label_metrics(targets: np.ndarray, scores: np.ndarray, classes: list[str]) -> dict:
    """top-1 / top-5 accuracy, per-class accuracy (recall) and the confusion matrix."""
    matrix = confusion_matrix(targets, scores.argmax(1), labels=list(range(len(classes))))
    per_class = {c: float(matrix[i, i] / matrix[i].sum()) if matrix[i].sum() else float("nan")
                 for i, c in enumerate(classes)}
    return {"top1_accuracy": top_k_accuracy(targets, scores, 1), "top5_accuracy": top_k_accuracy(targets, scores, 5),
            "per_class_accuracy": per_class, "confusion_matrix": matrix.tolist(), "n": int(len(targets))}


def multilabel_metrics(targets: np.ndarray, scores: np.ndarray, tags: list[str]) -> dict:
    """Macro ROC-AUC and PR-AUC over tags (tags without both classes in the split left out), per tag."""
    ok = _scorable(targets)
    per_tag = {t: {"roc_auc": float(roc_auc_score(targets[:, i], scores[:, i])),
                   "pr_auc": float(average_precision_score(targets[:, i], scores[:, i]))}
               for i, t in enumerate(tags) if ok[i]}
    return {"roc_auc_macro": roc_auc_macro(targets, scores),
            "pr_auc_macro": float(average_precision_score(targets[:, ok], scores[:, ok], average="macro"))
            if ok.any() else float("nan"),
            "per_tag": per_tag, "tags_scored": int(ok.sum()), "n": int(len(targets))}
