"""The method contract: what the engine (`s3t.training.engine`) trains.

A method is an `nn.Module` that holds its encoder(s) under the contract of `s3t.models`, with

- `encoder`: the backbone that checkpoints store under their own key and `load_encoder` returns;
- `forward(batch, gen) -> (loss, stats)`: one training step's loss (a scalar tensor) from a batch
  of its dataset, with `gen` the step's augmentation generator; `stats` maps each of
  `stat_names` to a float (logged beside the loss);
- `after_step()`: called after each optimiser step (MoCo's momentum update of its key encoder);
- `check_batch(global_batch, items)`: refuse a batch size the method cannot train with;
- `views(cache, items, cfg)`: the dataset of the views it trains on (two log-CQT crops of each
  item unless it says otherwise).

Self-supervised methods are named in `s3t.methods.registry`; supervised training builds its
method from the labels it is given.
"""

from __future__ import annotations

import torch

from s3t.config.schema import Config
from s3t.data.cache import Cache, Corpus
from s3t.data.views import TwoCropDataset
from s3t.transforms import augment
from s3t.transforms.preprocess import model_input


class Method(torch.nn.Module):
    name = "method"
    stat_names: tuple[str, ...] = ()
    encoder: torch.nn.Module

    def forward(self, batch, gen: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after every optimiser step that was taken."""

    def check_batch(self, global_batch: int, items: int) -> None:
        """Raise ValueError if this method cannot train on `items` items in global batches of `global_batch`."""

    def views(self, cache: Cache | Corpus, items: list[int], cfg: Config) -> torch.utils.data.Dataset:
        """The views it trains on, of the cache's `items`: two log-CQT crops of each, and its track."""
        return TwoCropDataset(cache, items, cfg.model.frames, cfg.augment, cfg.train.seed)


def spectrogram_views(views: torch.Tensor, cfg: Config, gen: torch.Generator) -> torch.Tensor:
    """Two log-CQT crops per item (B, 2, 84, T), augmented and pre-processed: (B, 2, 1, S, S) model inputs."""
    x = model_input(augment.augment_views(views, cfg.augment, gen).flatten(0, 1), cfg.model)
    return x.unflatten(0, (views.shape[0], 2))
