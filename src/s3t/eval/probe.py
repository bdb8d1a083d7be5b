"""Probes on frozen features: the paper's linear layer, or MARBLE's MLP (one hidden layer of 512,
ReLU, dropout 0.2) as `probe.kind=mlp`, trained with the paper's recipe, the epoch chosen on
validation; and the metrics of the paper (scikit-learn)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from s3t.config.schema import ProbeConfig
from s3t.training.schedule import warmup_cosine


@dataclass
class Probe:
    """A trained probe with the feature scaling it expects: features (N, D) -> scores (N, C). The
    output layer (weight, bias), after a hidden ReLU layer for the MLP."""

    weight: torch.Tensor  # (C, D), or (C, hidden) for the MLP
    bias: torch.Tensor  # (C,)
    mean: torch.Tensor  # (D,)
    std: torch.Tensor  # (D,)
    multilabel: bool
    epoch: int = 0  # the epoch chosen on validation
    history: list[dict] = field(default_factory=list)  # per epoch: train loss, validation score
    hidden_weight: torch.Tensor | None = None  # (hidden, D): the MLP's first layer
    hidden_bias: torch.Tensor | None = None

    def scores(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        """Class probabilities (softmax) or tag probabilities (sigmoid), (N, C)."""
        x = (torch.as_tensor(np.asarray(features), dtype=torch.float32) - self.mean) / self.std
        if self.hidden_weight is not None:
            x = torch.relu(x @ self.hidden_weight.T + self.hidden_bias)
        logits = x @ self.weight.T + self.bias
        return (torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)).numpy()

    def state(self) -> dict:
        mlp = self.hidden_weight is not None
        hidden = {"hidden_weight": self.hidden_weight, "hidden_bias": self.hidden_bias} if mlp else {}
        return {"weight": self.weight, "bias": self.bias, "mean": self.mean, "std": self.std,
                "multilabel": self.multilabel, "epoch": self.epoch, **hidden}

    @classmethod
    def from_state(cls, state: dict) -> Probe:
        return cls(state["weight"], state["bias"], state["mean"], state["std"], bool(state["multilabel"]),
                   int(state["epoch"]), hidden_weight=state.get("hidden_weight"), hidden_bias=state.get("hidden_bias"))


def validation_score(scores: np.ndarray, targets: np.ndarray, multilabel: bool) -> float:
    """What picks the epoch: accuracy (single-label) or macro ROC-AUC (multi-label)."""
    if multilabel:
        return roc_auc_macro(targets, scores)
    return float((scores.argmax(1) == targets).mean())


def probe_network(dim: int, n_classes: int, cfg: ProbeConfig, gen: torch.Generator) -> torch.nn.Sequential:
    """The probe as a module, its weights drawn from `gen`: [Linear] or [Linear, ReLU, Dropout, Linear]."""
    out_dim = cfg.hidden if cfg.kind == "mlp" else dim
    head = torch.nn.Linear(out_dim, n_classes)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=gen) * 0.01)
        head.bias.zero_()
    if cfg.kind == "linear":
        return torch.nn.Sequential(head)
    hidden = torch.nn.Linear(dim, cfg.hidden)
    with torch.no_grad():  # PyTorch's default (Kaiming-uniform) range, from the seeded generator
        bound = 1 / math.sqrt(dim)
        hidden.weight.copy_((torch.rand(hidden.weight.shape, generator=gen) * 2 - 1) * bound)
        hidden.bias.copy_((torch.rand(cfg.hidden, generator=gen) * 2 - 1) * bound)
    return torch.nn.Sequential(hidden, torch.nn.ReLU(), torch.nn.Dropout(cfg.dropout), head)


def _snapshot(net: torch.nn.Sequential, mean, std, multilabel: bool, epoch: int) -> Probe:
    head, first = net[-1], net[0]
    hidden = (first.weight.detach().clone(), first.bias.detach().clone()) if len(net) > 1 else (None, None)
    return Probe(head.weight.detach().clone(), head.bias.detach().clone(), mean, std, multilabel, epoch,
                 hidden_weight=hidden[0], hidden_bias=hidden[1])


def train_probe(x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray,
                n_classes: int, multilabel: bool, cfg: ProbeConfig, batch_size: int, seed: int = 0) -> Probe:
    """Fit the probe `cfg.kind` names (AdamW, warm-up + cosine) on features (N, D) with labels (N,) class
    ids or (N, C) 0/1 tags; keep the epoch with the best validation score (the last on ties)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(x_train, dtype=torch.float32)
    y = torch.as_tensor(y_train, dtype=torch.float32 if multilabel else torch.long)
    mean = x.mean(0) if cfg.standardize else torch.zeros(x.shape[1])
    std = x.std(0).clamp_min(1e-6) if cfg.standardize and len(x) > 1 else torch.ones(x.shape[1])
    net = probe_network(x.shape[1], n_classes, cfg, gen)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = F.binary_cross_entropy_with_logits if multilabel else F.cross_entropy
    xs = (x - mean) / std
    best, best_score, history = _snapshot(net, mean, std, multilabel, 0), -math.inf, []
    with torch.random.fork_rng(devices=[]):  # dropout's masks follow the probe's seed, not the caller's state
        torch.manual_seed(seed)
        for epoch in range(cfg.epochs):
            loss = _train_epoch(net, opt, loss_fn, xs, y, epoch, cfg, batch_size, gen)
            candidate = _snapshot(net, mean, std, multilabel, epoch + 1)
            score = validation_score(candidate.scores(x_valid), y_valid, multilabel) if len(x_valid) else -loss
            history.append({"epoch": epoch + 1, "train_loss": loss, "valid_score": score})
            if score >= best_score:
                best, best_score = candidate, score
    best.history = history
    return copy.copy(best)


def _train_epoch(net, opt, loss_fn, xs, y, epoch: int, cfg: ProbeConfig, batch_size: int, gen) -> float:
    """One pass over the shuffled features; returns the mean training loss."""
    steps = max(1, math.ceil(len(xs) / batch_size))
    order = torch.randperm(len(xs), generator=gen)
    total = 0.0
    for k in range(steps):
        for group in opt.param_groups:
            group["lr"] = warmup_cosine(epoch + k / steps, cfg.epochs, cfg.warmup_epochs, cfg.lr)
        idx = order[k * batch_size : (k + 1) * batch_size]
        loss = loss_fn(net(xs[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(idx)
    return total / len(xs)


def _sklearn_metrics():
    """scikit-learn's metrics, imported when first scored: at import they cost every `s3t` process 0.8 s."""
    from sklearn import metrics

    return metrics


def roc_auc_macro(targets: np.ndarray, scores: np.ndarray) -> float:
    """Macro ROC-AUC over the tags that have both positives and negatives."""
    ok = _scorable(targets)
    if not ok.any():
        return float("nan")
    return float(_sklearn_metrics().roc_auc_score(targets[:, ok], scores[:, ok], average="macro"))


def _scorable(targets: np.ndarray) -> np.ndarray:
    positives = targets.sum(0)
    return (positives > 0) & (positives < len(targets))


def top_k_accuracy(targets: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Fraction of items whose class is among their k highest scores (1.0 when k >= classes)."""
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((top == targets[:, None]).any(1).mean())


def single_label_metrics(targets: np.ndarray, scores: np.ndarray, classes: list[str]) -> dict:
    """top-1 / top-5 accuracy, per-class accuracy (recall) and the confusion matrix."""
    matrix = _sklearn_metrics().confusion_matrix(targets, scores.argmax(1), labels=list(range(len(classes))))
    per_class = {c: float(matrix[i, i] / matrix[i].sum()) if matrix[i].sum() else float("nan")
                 for i, c in enumerate(classes)}
    return {"top1_accuracy": top_k_accuracy(targets, scores, 1), "top5_accuracy": top_k_accuracy(targets, scores, 5),
            "per_class_accuracy": per_class, "confusion_matrix": matrix.tolist(), "n": int(len(targets))}


def multilabel_metrics(targets: np.ndarray, scores: np.ndarray, tags: list[str]) -> dict:
    """Macro ROC-AUC and PR-AUC over tags (tags without both classes in the split left out), per tag."""
    ok = _scorable(targets)
    sk = _sklearn_metrics()
    per_tag = {t: {"roc_auc": float(sk.roc_auc_score(targets[:, i], scores[:, i])),
                   "pr_auc": float(sk.average_precision_score(targets[:, i], scores[:, i]))}
               for i, t in enumerate(tags) if ok[i]}
    return {"roc_auc_macro": roc_auc_macro(targets, scores),
            "pr_auc_macro": pr_auc_macro(targets, scores),
            "per_tag": per_tag, "tags_scored": int(ok.sum()), "n": int(len(targets))}


def pr_auc_macro(targets: np.ndarray, scores: np.ndarray) -> float:
    """Macro PR-AUC (average precision) over the tags that have both positives and negatives."""
    ok = _scorable(targets)
    if not ok.any():
        return float("nan")
    return float(_sklearn_metrics().average_precision_score(targets[:, ok], scores[:, ok], average="macro"))


# each headline metric as a function of (targets, scores), for resampling
HEADLINE_METRICS = {
    "top1_accuracy": lambda t, s: top_k_accuracy(t, s, 1),
    "top5_accuracy": lambda t, s: top_k_accuracy(t, s, 5),
    "roc_auc_macro": roc_auc_macro,
    "pr_auc_macro": pr_auc_macro,
}
