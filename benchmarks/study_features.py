"""Representation study (issue 11): which features, pooled how, probed how, separate the dev corpus?

Embeds the real-music dev clip cache (`s3t prepare /tmp/realmusic-dev.csv --out /tmp/rm-clips
--clip-seconds 30`) with one or more encoders (random seeds, checkpoints, and always the `cqt-stats`
reference), each read out several ways (pooling x embedding; the weights unchanged), and scores every
readout three ways: the selection metric, a track-grouped 5-fold logistic regression over the train
and validation clips only ("cv-train"), and, for the record, test top-1 of the linear-eval probe
("adamw") and of scikit-learn's logistic regression with C chosen on validation ("sklearn"). Prints
one row per (encoder, readout, probe): clip and track top-1.

    .venv/bin/python benchmarks/study_features.py --cache /tmp/rm-clips --random 0 1 2 \
        --checkpoint runs/a/last.pt --readouts mean-resize rows-resize --json out.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from s3t.config.loading import load_config
from s3t.config.schema import ProbeConfig
from s3t.data.cache import open_cache
from s3t.eval.probe import train_probe
from s3t.inference.encoders import CqtStatsEncoder, Encoder, random_encoder
from s3t.inference.features import extract_features
from s3t.inference.load import load_encoder
from s3t.models.backbones import build_encoder


def dev_split(cache, seed: int = 0) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """Per clip: its split (train/valid/test; valid = a stratified tenth of the train tracks),
    label id, track; as linear-eval draws them."""
    labels, splits, tracks = cache.column("label"), cache.column("split"), cache.column("track")
    tracks = [t if t is not None else item for t, item in zip(tracks, cache.track_ids)]  # whole-track cache
    classes = sorted(set(labels))
    train_tracks: dict[str, list[str]] = {}
    for lab, s, t in zip(labels, splits, tracks):
        if s == "train" and t not in train_tracks.get(lab, []):
            train_tracks.setdefault(lab, []).append(t)
    rng, valid = random.Random(seed), set()
    for lab in sorted(train_tracks):
        members = sorted(train_tracks[lab])
        rng.shuffle(members)
        valid |= set(members[: max(1, round(0.1 * len(members)))] if len(members) >= 3 else [])
    split = ["valid" if t in valid else s for s, t in zip(splits, tracks)]
    return split, np.array([classes.index(lab) for lab in labels]), tracks, classes


READOUTS = {  # name -> model config fields the frozen encoder is read out with (its weights unchanged)
    "mean-resize": dict(pooling="mean", embedding="resize"),
    "mean-windows": dict(pooling="mean", embedding="windows"),
    "rows-resize": dict(pooling="rows", embedding="resize"),
    "rows-windows": dict(pooling="rows", embedding="windows"),
    "rows_stats-resize": dict(pooling="rows_stats", embedding="resize"),
    "stages-resize": dict(pooling="stages", embedding="resize"),
}


def read_out(encoder: Encoder, readout: str) -> Encoder:
    """The same weights with another pooling / embedding."""
    model_cfg = dataclasses.replace(encoder.model_cfg, **READOUTS[readout])
    backbone = build_encoder(model_cfg)
    backbone.load_state_dict(encoder.backbone.state_dict())
    return Encoder(backbone, model_cfg, encoder.time_compression, encoder.name)


def track_top1(scores, y, tracks, mask) -> float:
    by = {}
    for s, t, yy in zip(scores[mask], np.array(tracks)[mask], y[mask]):
        by.setdefault(t, [np.zeros_like(s), yy])[0] += s
    return float(np.mean([v[0].argmax() == v[1] for v in by.values()]))


class Whitener:
    """PCA whitening with shrinkage: components scaled by 1 / sqrt(eigenvalue + eps · mean eigenvalue)."""

    def __init__(self, eps: float):
        self.eps = eps

    def fit(self, x: np.ndarray) -> Whitener:
        self.mean = x.mean(0)
        _, s, vt = np.linalg.svd(x - self.mean, full_matrices=False)
        eig = s**2 / len(x)
        self.w = vt.T / np.sqrt(eig + self.eps * eig.mean())
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) @ self.w


def cv_top1(x, y, split, tracks, folds: int = 5, C: float = 0.1, scaling=StandardScaler) -> tuple[float, float]:
    """Track-grouped, class-stratified k-fold logistic regression over the train and valid clips only
    (the test split is never read): mean clip top-1 and track top-1 over the held-out folds. Uses every
    training clip as a held-out clip once, so it is far less noisy than the 9 validation tracks."""
    from sklearn.model_selection import StratifiedGroupKFold

    keep = np.array([s != "test" for s in split])
    xs, ys, groups = x[keep], y[keep], np.array(tracks)[keep]
    clip_hits, track_hits = [], []
    for train, held in StratifiedGroupKFold(folds, shuffle=True, random_state=0).split(xs, ys, groups):
        scaler = scaling().fit(xs[train])
        lr = LogisticRegression(C=C, max_iter=3000).fit(scaler.transform(xs[train]), ys[train])
        s = lr.predict_proba(scaler.transform(xs[held]))
        clip_hits += list(s.argmax(1) == ys[held])
        mask = np.ones(len(held), bool)
        track_hits.append(track_top1(s, ys[held], groups[held], mask) * len(set(groups[held])))
    n_tracks = len(set(groups))
    return float(np.mean(clip_hits)), float(np.sum(track_hits) / n_tracks)


def probe_all(x, y, split, tracks, n_classes, scaling=StandardScaler) -> dict:
    """The three probes; `scaling` is the scikit-learn probes' feature scaling (fit on their train part)."""
    split = np.array(split)
    tr, va, te = (split == s for s in ("train", "valid", "test"))
    res = {}
    p = train_probe(x[tr], y[tr], x[va], y[va], n_classes, False, ProbeConfig(), 64, 0)
    s = p.scores(x)
    res["adamw"] = (float((s[te].argmax(1) == y[te]).mean()), track_top1(s, y, tracks, te))
    scaler = scaling().fit(x[tr])
    xs = scaler.transform(x)
    best = None
    for C in (1e-3, 1e-2, 1e-1, 1.0, 10.0):
        lr = LogisticRegression(C=C, max_iter=2000).fit(xs[tr], y[tr])
        acc = (lr.predict(xs[va]) == y[va]).mean()
        if best is None or acc > best[0]:
            best = (acc, C, lr)
    s = best[2].predict_proba(xs)
    res["sklearn"] = (float((s[te].argmax(1) == y[te]).mean()), track_top1(s, y, tracks, te), best[1])
    res["cv-train"] = cv_top1(x, y, split, tracks, scaling=scaling)
    return res


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", required=True)
    p.add_argument("--random", type=int, nargs="*", default=[], help="random-init seeds")
    p.add_argument("--config", default="cpu-small")
    p.add_argument("--set", nargs="*", default=[], dest="overrides")
    p.add_argument("--checkpoint", nargs="*", default=[])
    p.add_argument("--readouts", nargs="*", default=list(READOUTS))
    p.add_argument("--whiten", type=float, metavar="EPS",
                   help="whiten the scikit-learn probes' features (shrinkage EPS) instead of standardising them")
    p.add_argument("--json")
    args = p.parse_args(argv)
    scaling = StandardScaler if args.whiten is None else (lambda: Whitener(args.whiten))
    torch.set_num_threads(2)
    cache = open_cache(args.cache)
    split, y, tracks, classes = dev_split(cache)
    rows = []

    def report(name, pooling, x):
        r = probe_all(x, y, split, tracks, len(classes), scaling)
        for probe, v in r.items():
            rows.append({"encoder": name, "pooling": pooling, "probe": probe, "dim": x.shape[1],
                         "clip_top1": v[0], "track_top1": v[1], **({"C": v[2]} if len(v) > 2 else {})})
            print(f"{name:40s} {pooling:13s} {probe:8s} d={x.shape[1]:5d} clip {v[0]:.3f} track {v[1]:.3f}",
                  flush=True)

    report("cqt-stats", "-", extract_features(cache, CqtStatsEncoder(), progress=False))
    cfg = load_config([args.config], args.overrides)
    encoders = [(f"random(seed={s})", lambda s=s: random_encoder(cfg.model, seed=s)) for s in args.random]
    encoders += [(c, lambda c=c: load_encoder(c)) for c in args.checkpoint]
    for name, make in encoders:
        encoder = make()
        for readout in args.readouts:
            t = time.perf_counter()
            feats = extract_features(cache, read_out(encoder, readout), progress=False)
            print(f"# {name} {readout}: embedded in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            report(name, readout, feats)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
