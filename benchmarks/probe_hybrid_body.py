"""Issue 27: where does a stride-32 hybrid's feature come from? Probe only the ResNet body of a
`swin_hybrid32` checkpoint (its stem: resnet_small whole), read by frequency row over windows as the
recipe reads the whole encoder, so the Swin stage's share shows beside `s3t linear-eval` of the same weights.

    .venv/bin/python benchmarks/probe_hybrid_body.py --checkpoint RUN/last.pt --root realmusic-dev.csv \
        --cache DEV_CACHE --out OUT [--random-seed S]      # --random-seed: the Random Init of that seed instead
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from s3t.config.loading import load_config
from s3t.data.datasets import load_csv
from s3t.eval.linear_eval import linear_eval
from s3t.inference.encoders import Encoder, random_encoder
from s3t.inference.load import load_encoder


class ResNetBody(torch.nn.Module):
    """The hybrid's ResNet body alone, rows readout: (B, 1, H, W) -> (B, rows · 256)."""

    input_kind = "spectrogram"

    def __init__(self, body: torch.nn.Module):
        super().__init__()
        self.body = body
        self.num_features = 256 * 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(3).flatten(1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint")
    p.add_argument("--random-seed", type=int)
    p.add_argument("--root", required=True)
    p.add_argument("--cache", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.random_seed is None:
        whole = load_encoder(args.checkpoint)
    else:
        cfg = load_config(["cpu-small-swin"], [f"train.seed={args.random_seed}"])
        whole = random_encoder(cfg.model, seed=args.random_seed)
    model_cfg = replace(whole.model_cfg, readout="", pooling="mean")  # the body pools itself
    body = Encoder(ResNetBody(whole.backbone.swin.patch_embed.body), model_cfg, whole.time_compression,
                   name=f"{whole.name} (ResNet body)")
    probe = load_config(["cpu-small-swin"]).probe
    metrics = linear_eval(load_csv(args.root), body, args.out, probe, seeds=3, cache_dir=args.cache,
                          clip_seconds=30, progress=False)
    print({level: round(metrics[level]["top1_accuracy"]["mean"], 3) for level in ("clip", "track")})


if __name__ == "__main__":
    main()
