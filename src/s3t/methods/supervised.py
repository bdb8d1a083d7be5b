"""The Supervised method: the encoder and a linear head trained end to end on labelled crops
(`s3t.data.views.LabeledCrops`): cross-entropy over classes, or binary cross-entropy over tags.
`s3t.workflows.supervised` trains it for the paper's "Supervised" row."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from s3t.config.schema import Config
from s3t.methods.base import Method
from s3t.transforms import augment
from s3t.transforms.preprocess import model_input


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
