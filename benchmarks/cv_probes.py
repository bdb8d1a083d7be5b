"""Track-grouped cross-validation over every labelled track of linear-eval folders (issue 11).

A dev test split of a few dozen tracks cannot settle a few points between two encoders. This takes each
`s3t linear-eval` folder's cached features (all splits) and probes them K-fold: folds of whole tracks,
stratified by label, the same folds for every folder; in each fold a tenth of the training tracks is the
validation set that picks the probe's epoch, as in linear-eval, and the folder's own probe settings
(probe.pt) train it with several seeds. Every labelled track is then a test track once. The per-track
hits go through the paired test of `paired_probes.py`, pairs A[i] with B[i]. To choose between settings
without reading the test split, `--splits train valid` cross-validates over those tracks only.

    .venv/bin/python benchmarks/cv_probes.py --a runs/le/s3t-0 runs/le/s3t-1 --b runs/le/rand-0 runs/le/rand-1
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from s3t.config.schema import ProbeConfig
from s3t.eval.linear_eval import hits_per_track
from s3t.eval.predict import load_probe
from s3t.eval.probe import train_probe
from s3t.inference.features import read_features

sys.path.insert(0, str(Path(__file__).parent))
from paired_probes import over_seeds, parse_pairs, report  # noqa: E402


def labelled_features(folder: Path, splits: tuple[str, ...] = ("train", "valid", "test")
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], ProbeConfig]:
    """A linear-eval folder's clip features of the tracks in `splits`, label ids, tracks, classes and probe
    settings."""
    _, record = load_probe(folder)
    with open(folder / "manifest.csv", newline="") as f:
        label_of = {row["path"]: row["label"] for row in csv.DictReader(f) if row["split"] in splits}
    (feature_file,) = (folder / "features").glob(f"{record['encoder_fingerprint']}*.npz")
    stored = read_features(feature_file)
    if stored is None:
        raise SystemExit(f"{feature_file} is damaged")
    tracks = np.array([str(t).rsplit("#", 1)[0] for t in stored["track_ids"]])
    keep = np.array([t in label_of for t in tracks])
    classes = record["classes"]
    y = np.array([classes.index(label_of[t]) for t in tracks[keep]])
    return stored["features"][keep], y, tracks[keep], classes, ProbeConfig(**record["config"]["probe"])


def folds(y: np.ndarray, tracks: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(train, valid, test) clip indices of k track-grouped folds; valid is a tenth of each fold's training tracks."""
    order = np.argsort(tracks, kind="stable")  # the folds depend on the tracks, not on the feature file's order
    out = []
    for rest, test in StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(order, y[order], tracks[order]):
        rest, test = order[rest], order[test]
        inner = StratifiedGroupKFold(10, shuffle=True, random_state=seed)
        train, valid = next(inner.split(rest, y[rest], tracks[rest]))
        out.append((rest[train], rest[valid], test))
    return out


def cv_hits(folder: str | Path, k: int = 5, probe_seeds: int = 3, batch: int = 256, fold_seed: int = 0,
            splits: tuple[str, ...] = ("train", "valid", "test")) -> dict[str, tuple[float, float, float]]:
    """Per labelled track of `splits`, each a test track in one fold: hits as `paired_probes.over_seeds` gives them."""
    x, y, tracks, classes, cfg = labelled_features(Path(folder), splits)
    rows = []
    for train, valid, test in folds(y, tracks, k, fold_seed):
        rows += fold_hits(x, y, tracks, len(classes), cfg, (train, valid, test), probe_seeds, batch)
    return over_seeds(rows)


def fold_hits(x: np.ndarray, y: np.ndarray, tracks: np.ndarray, n_classes: int, cfg: ProbeConfig,
              fold: tuple[np.ndarray, np.ndarray, np.ndarray], probe_seeds: int, batch: int) -> list[dict]:
    """Per-track hits on one fold's test clips of a probe trained on its train clips (epoch picked on valid),
    one row per track and probe seed."""
    train, valid, test = fold
    rows = []
    for seed in range(probe_seeds):
        probe = train_probe(x[train], y[train], x[valid], y[valid], n_classes, False, cfg, batch, seed)
        rows += hits_per_track(probe, x[test], y[test], [(None, t) for t in tracks[test]])
    return rows


def main(argv=None) -> None:
    def options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--folds", type=int, default=5)
        p.add_argument("--probe-seeds", type=int, default=3)
        p.add_argument("--splits", nargs="+", default=["train", "valid", "test"], choices=["train", "valid", "test"],
                       help="the tracks to cross-validate over (train valid: choose without reading test)")

    args = parse_pairs(__doc__, argv, options)
    hits = {folder: cv_hits(folder, args.folds, args.probe_seeds, splits=tuple(args.splits))
            for folder in dict.fromkeys(args.a + args.b)}
    print(f"{args.folds}-fold track-grouped CV over the {' + '.join(args.splits)} tracks, {args.probe_seeds} probe seeds per fold")
    report(args.a, args.b, [hits[f] for f in args.a], [hits[f] for f in args.b])


if __name__ == "__main__":
    main()
