"""Representation study (issue 11): does pre-training learn its own pretext, and does the
encoder keep what a random one has?

`retrieval`: embeds the dev clip cache with `cqt-stats`, random encoders and checkpoints, and scores
(a) track retrieval@1, the pretext itself (for each clip whose track has another clip, is its nearest
other clip, by cosine on standardised features, from the same track?), the same on PCA-whitened
features (top 128 components at unit variance: a few dominant directions then no longer decide the
cosine), (b) the class of the nearest clip of another track (1-NN, leave-one-track-out) and (c) the
effective rank of the features.

`queue`: loads a MoCo checkpoint and encodes one batch of 64 items of distinct tracks of a corpus
(track positives, the run's augmentation): the mean cosine of each query with its positive, with the
other items' keys (as fresh as the positive) and with the queue, and acc@1 against each. When the
queue looks less like the queries than fresh keys do, acc@1 against it is inflated by the key
encoder's drift, not earned by telling tracks apart.

    .venv/bin/python benchmarks/study_pretext.py retrieval --cache /tmp/rm-clips --random 0 1 \
        --checkpoint runs/a/last.pt --readouts mean-resize rows-resize
    .venv/bin/python benchmarks/study_pretext.py queue --corpus /tmp/pt-clips --checkpoint runs/a/epoch0003.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from study_features import READOUTS, dev_split, read_out  # noqa: E402

from s3t.config.loading import load_config  # noqa: E402
from s3t.data.cache import open_cache, open_corpus  # noqa: E402
from s3t.data.views import TwoCropDataset, track_groups  # noqa: E402
from s3t.inference.encoders import CqtStatsEncoder, random_encoder  # noqa: E402
from s3t.inference.features import extract_features  # noqa: E402
from s3t.inference.load import load_encoder  # noqa: E402
from s3t.io.checkpoint import load_checkpoint, restore_method  # noqa: E402
from s3t.methods.base import spectrogram_views  # noqa: E402
from s3t.methods.registry import build_method  # noqa: E402


def standardised(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(0)) / (x.std(0) + 1e-6)


def whitened(x: np.ndarray, k: int = 128) -> np.ndarray:
    """The top-k principal components, each scaled to unit variance (PCA whitening)."""
    u, _, _ = np.linalg.svd(x - x.mean(0), full_matrices=False)
    return u[:, :k]


def effective_rank(x: np.ndarray) -> float:
    """exp(entropy of the centred features' variance spectrum): how many directions carry the variance."""
    s = np.linalg.svd(x - x.mean(0), compute_uv=False) ** 2
    p = s / s.sum()
    return float(np.exp(-(p * np.log(p + 1e-12)).sum()))


def retrieval_scores(x: np.ndarray, y: np.ndarray, tracks: np.ndarray) -> tuple[float, float]:
    """(track retrieval@1 over clips whose track has another clip, class 1-NN among other tracks),
    by cosine on `x` as given."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    has_twin = np.array([(tracks == t).sum() > 1 for t in tracks])
    same_track = tracks[sim.argmax(1)] == tracks
    sim[tracks[:, None] == tracks[None, :]] = -np.inf
    return float(same_track[has_twin].mean()), float((y[sim.argmax(1)] == y).mean())


def retrieval(args) -> None:
    cache = open_cache(args.cache)
    _, y, tracks, _ = dev_split(cache)
    tracks = np.array(tracks)
    print(f"{len(y)} clips of {len(set(tracks))} tracks; a random guess finds the track "
          f"{np.mean([(tracks == t).sum() - 1 for t in tracks]) / (len(y) - 1):.3f} of the time")
    rows = [("cqt-stats", "-", extract_features(cache, CqtStatsEncoder(), progress=False))]
    model = load_config([args.config], args.overrides).model
    encoders = [(f"random(seed={s})", random_encoder(model, seed=s)) for s in args.random]
    encoders += [(c, load_encoder(c)) for c in args.checkpoint]
    for name, encoder in encoders:
        for readout in args.readouts:
            rows.append((name, readout, extract_features(cache, read_out(encoder, readout), progress=False)))
    for name, readout, x in rows:
        found, knn = retrieval_scores(standardised(x), y, tracks)
        white, _ = retrieval_scores(whitened(x), y, tracks)
        print(f"{name:40s} {readout:13s} track retrieval@1 {found:.3f} (PCA-whitened: {white:.3f})   class 1-NN "
              f"(other tracks) {knn:.3f}   effective rank {effective_rank(x):.1f}", flush=True)


@torch.no_grad()
def queue(args) -> None:
    state = load_checkpoint(args.checkpoint)
    cfg = load_config(base=state["config"])
    method = build_method(cfg)
    restore_method(method, state)
    method.eval()
    corpus = open_corpus(args.corpus)
    groups, seen, items = track_groups(corpus), set(), []
    for i, g in enumerate(groups):
        if g not in seen and len(items) < args.batch:
            seen.add(g)
            items.append(i)
    data = TwoCropDataset(corpus, list(range(len(corpus))), cfg.model.frames, cfg.augment, seed=123)
    views = torch.stack([data[(0, i)][0] for i in items])
    x = spectrogram_views(views, cfg, torch.Generator().manual_seed(0))
    q, k = method.project_queries(method.query_features(x[:, 0])), method.encode_keys(x[:, 1])
    positive, fresh, queued = (q * k).sum(1), q @ k.T, q @ method.queue
    fresh.fill_diagonal_(float("-inf"))
    others = fresh[torch.isfinite(fresh)]
    beats = lambda negatives: float((positive > negatives.max(1).values).float().mean())  # noqa: E731
    print(f"{args.checkpoint}: cos(q, positive) {positive.mean():.3f}, cos(q, fresh keys of other tracks) "
          f"{others.mean():.3f}, cos(q, queue) {queued.mean():.3f}; acc@1 against the {len(items) - 1} fresh "
          f"keys {beats(fresh):.3f}, against the {queued.shape[1]} queued {beats(queued):.3f}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("retrieval")
    r.add_argument("--cache", required=True)
    r.add_argument("--random", type=int, nargs="*", default=[])
    r.add_argument("--config", default="cpu-small")
    r.add_argument("--set", nargs="*", default=[], dest="overrides")
    r.add_argument("--checkpoint", nargs="*", default=[])
    r.add_argument("--readouts", nargs="*", default=["mean-resize", "rows-resize"], choices=list(READOUTS))
    qp = sub.add_parser("queue")
    qp.add_argument("--corpus", nargs="+", required=True)
    qp.add_argument("--checkpoint", required=True)
    qp.add_argument("--batch", type=int, default=64)
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    {"retrieval": retrieval, "queue": queue}[args.command](args)


if __name__ == "__main__":
    main()
