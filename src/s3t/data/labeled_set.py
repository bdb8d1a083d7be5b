"""A labeled set: its classes, whether it is multi-label, and every item's audio path, labels and
split ('train', 'valid' or 'test'), with the properties its evaluation follows; and the stratified
splits drawn for data that comes without one."""

from __future__ import annotations

import dataclasses
import logging
import random
from dataclasses import dataclass

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
# the two metrics a report leads with, by whether the set is multi-label
HEADLINE = {False: ("top1_accuracy", "top5_accuracy"), True: ("roc_auc_macro", "pr_auc_macro")}


class DatasetError(ValueError):
    """A dataset root or manifest that does not have the expected layout."""


@dataclass(frozen=True)
class Item:
    path: str
    labels: tuple[str, ...]
    split: str


@dataclass
class LabeledSet:
    """A labelled dataset with the properties its evaluation follows, so that no code branches on its name."""

    name: str
    classes: list[str]
    multilabel: bool
    items: list[Item]
    probe_batch: int = 64  # the paper's linear-probe batch: 64 on GTZAN (and small sets of your own), 256 on FMA, MTAT

    @property
    def headline(self) -> tuple[str, str]:
        """The two metrics a report leads with: top-1/top-5 accuracy, or macro ROC-AUC/PR-AUC for tags."""
        return HEADLINE[self.multilabel]

    def split(self, name: str) -> list[Item]:
        return [item for item in self.items if item.split == name]

    def counts(self) -> dict[str, int]:
        return {s: len(self.split(s)) for s in SPLITS}


def stratified_split(labels: list[str], seed: int, fractions: tuple[float, float] = (0.7, 0.1)) -> list[str]:
    """'train'/'valid'/'test' for each item: per label, a shuffled `fractions` (rest test) share."""
    rng = random.Random(seed)
    out = [""] * len(labels)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    for label in sorted(by_label):
        members = by_label[label]
        rng.shuffle(members)
        n_train = max(1, round(fractions[0] * len(members)))
        n_valid = round(fractions[1] * len(members)) if len(members) > 2 else 0
        n_valid = max(n_valid, 1) if len(members) - n_train >= 2 else n_valid
        for k, i in enumerate(members):
            out[i] = "train" if k < n_train else "valid" if k < n_train + n_valid else "test"
    return out


def with_validation(dataset: LabeledSet, seed: int = 0, fraction: float = 0.1) -> LabeledSet:
    """The dataset itself, or, when it has no validation items, a copy in which a stratified
    `fraction` of the training items (at least one per label with 3 or more) became validation."""
    if dataset.split("valid") or not dataset.split("train"):
        return dataset
    rng = random.Random(seed)
    by_label: dict[str, list[Item]] = {}
    for item in dataset.split("train"):
        by_label.setdefault(";".join(item.labels), []).append(item)
    moved: set[int] = set()
    for label in sorted(by_label):
        members = by_label[label]
        rng.shuffle(members)
        n = max(1, round(fraction * len(members))) if len(members) >= 3 else 0
        moved |= {id(item) for item in members[:n]}
    log.info("%s has no validation split: %d of its %d training items are held out for it (seed %d)",
             dataset.name, len(moved), len(dataset.split("train")), seed)
    items = [Item(i.path, i.labels, "valid") if id(i) in moved else i for i in dataset.items]
    return dataclasses.replace(dataset, items=items)
