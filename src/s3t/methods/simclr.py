"""SimCLR's method (`train.method=simclr`) and the CLMR baseline (Spijkervet & Burgoyne 2021) it makes
with SampleCNN on raw waveforms (`--config clmr`).

For a waveform encoder, two views of a track are two random 59,049-sample crops (2.68 s at
22,050 Hz) of its audio (`s3t.data.views.TwoWaveCrops`), each through CLMR's chain of waveform augmentations
(`s3t.transforms.waves`); for a spectrogram encoder, the two views and their augmentations are MoCo's. The loss is NT-Xent over
the 2N views of a batch: each view's positive is its partner, the other 2N − 2 its negatives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from s3t.config.schema import Config
from s3t.data.cache import Cache, Corpus
from s3t.data.views import TwoWaveCrops
from s3t.methods.base import Method, spectrogram_views
from s3t.models.backbones import SAMPLES, build_encoder
from s3t.models.heads import projection_head
from s3t.transforms.waves import augment_waves


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss for two batches of views (N, C) of the same N items: cross-entropy of each
    view's partner among the other 2N − 1 views, by cosine similarity / temperature."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, C)
    n = len(z1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))  # a view is not its own negative
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, partner)


class SimCLR(Method):
    """An encoder and a projection head (two linear layers) trained by NT-Xent on the two views of each
    item: waveform views through CLMR's augmentations, spectrogram views through MoCo's."""

    name = "simclr"

    def __init__(self, encoder: torch.nn.Module, config: Config):
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.head = projection_head(encoder.num_features, encoder.num_features, config.clmr.dim, 2)

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor], gen: torch.Generator
                ) -> tuple[torch.Tensor, dict[str, float]]:
        views, _ = batch  # (B, 2, SAMPLES) waves or (B, 2, 84, T) log-CQTs
        B = views.shape[0]
        if self.encoder.input_kind == "wave":
            x = augment_waves(views.flatten(0, 1), self.config.clmr, gen).unflatten(0, (B, 2))[:, :, None]
        else:
            x = spectrogram_views(views, self.config, gen)
        # each view's batch through the encoder alone, so BatchNorm never sees a view beside its partner
        z1, z2 = (self.head(self.encoder(x[:, v])) for v in (0, 1))
        return nt_xent(z1, z2, self.config.clmr.temperature), {}

    def views(self, cache: Cache | Corpus, items: list[int], cfg: Config) -> torch.utils.data.Dataset:
        """A waveform encoder's views are two crops of an item's audio; a spectrogram encoder's, MoCo's."""
        if self.encoder.input_kind == "wave":
            return TwoWaveCrops(cache, items, SAMPLES, cfg.train.seed)
        return super().views(cache, items, cfg)


def build_simclr(cfg: Config) -> SimCLR:
    return SimCLR(build_encoder(cfg.model), cfg)
