"""Representation study (issue 11): how a clip shorter than the encoder's input should be fitted to it.

The encoders take a fixed number of frames (768 for `cpu-small`, about 17.8 s); `embed` and
`linear-eval` resize a shorter clip to that length, so a 3-s clip is stretched about 6x in time.
This compares three fits of the same short clips, for the same frozen weights: `stretch` (resize,
what the encoder does), `loop` (the clip repeated until it fills the input, as `augment.crop=native`
does for short items in training) and `pad` (the clip, then its own quietest level). Scored by the
study's selection metric, the track-grouped 5-fold CV over the dev train split (`study_features.cv_top1`).

    s3t prepare /tmp/realmusic-dev.csv --out /tmp/rm-3s --clip-seconds 3
    .venv/bin/python benchmarks/study_inputs.py --cache /tmp/rm-3s --every 4 --random 0 \
        --checkpoint /tmp/study/R0/last.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from study_features import cv_top1, dev_split, read_out  # noqa: E402

from s3t.config.loading import load_config  # noqa: E402
from s3t.data.cache import open_cache  # noqa: E402
from s3t.inference.encoders import CqtStatsEncoder, Encoder, random_encoder  # noqa: E402
from s3t.inference.features import embed_clips, extract_features  # noqa: E402
from s3t.inference.load import load_encoder  # noqa: E402
from s3t.transforms.augment import resize_time  # noqa: E402

FITS = ("stretch", "loop", "pad")


def fit(x: torch.Tensor, frames: int, how: str) -> torch.Tensor:
    """(84, T) -> (84, frames), T < frames."""
    T = x.shape[-1]
    if how == "stretch" or T >= frames:
        return resize_time(x, frames)
    if how == "loop":
        return x.repeat(1, -(-frames // T))[:, :frames]
    return torch.nn.functional.pad(x, (0, frames - T), value=float(x.min()))


def embed(encoder: Encoder, cache, indices: np.ndarray, how: str) -> np.ndarray:
    """The encoder's own batched embedding (`embed_clips`) of clips already fitted to its input length."""
    clips = (fit(torch.as_tensor(np.asarray(cache[i], np.float32)), encoder.frames, how) for i in indices)
    return np.stack(list(embed_clips(encoder, clips, windows=False, batch_size=64)))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", required=True, help="a clip cache of short clips (prepare --clip-seconds)")
    p.add_argument("--every", type=int, default=1, help="use every Nth clip (a faster, smaller sample)")
    p.add_argument("--random", type=int, nargs="*", default=[])
    p.add_argument("--config", default="cpu-small")
    p.add_argument("--checkpoint", nargs="*", default=[])
    p.add_argument("--readouts", nargs="*", default=["mean-resize", "rows-resize"])
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    cache = open_cache(args.cache)
    split, y, tracks, _ = dev_split(cache)
    keep = np.arange(0, len(cache), args.every)
    split, y, tracks = [split[i] for i in keep], y[keep], [tracks[i] for i in keep]
    stats = extract_features(cache, CqtStatsEncoder(), indices=keep, progress=False)
    print(f"{len(keep)} clips of {cache[0].shape[-1]} frames; cqt-stats CV clip / track top-1 "
          "%.3f / %.3f" % cv_top1(stats, y, split, tracks), flush=True)
    model = load_config([args.config]).model
    encoders = [(f"random(seed={s})", random_encoder(model, seed=s)) for s in args.random]
    encoders += [(c, load_encoder(c)) for c in args.checkpoint]
    for name, encoder in encoders:
        for readout in args.readouts:
            for how in FITS:
                x = embed(read_out(encoder, readout), cache, keep, how)
                print(f"{name:30s} {readout:12s} {how:8s} CV clip / track top-1 %.3f / %.3f"
                      % cv_top1(x, y, split, tracks), flush=True)


if __name__ == "__main__":
    main()
