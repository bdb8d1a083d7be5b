"""Nested cross-validation: a readout chosen without the tracks it is scored on (issue 11).

`cv_probes.py` scores one linear-eval folder per run; when that folder's readout was itself chosen on some
of the same tracks, its score is not independent of the choice. Here each run is a set of candidate
folders (one encoder read out several ways, comma-separated), and every outer fold chooses among them
by an inner cross-validation over its own training tracks only, then probes the choice and scores it
on the outer fold's test tracks. Every labelled track is a test track once, and no track that scores a
choice took part in making it. The per-track hits go through `paired_probes.py`'s paired test, A[i]
against B[i]; which candidate each fold chose is printed.

    .venv/bin/python benchmarks/nested_cv.py --a le/mean/s3t1,le/rows/s3t1 le/mean/s3t5,le/rows/s3t5 \
        --b le/mean/rand1,le/rows/rand1 le/mean/rand5,le/rows/rand5
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from s3t.eval.probe import train_probe

sys.path.insert(0, str(Path(__file__).parent))
from cv_probes import fold_hits, folds, labelled_features  # noqa: E402
from paired_probes import over_seeds, parse_pairs, report  # noqa: E402


def aligned_candidates(group: list[str]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, list[str], object]:
    """Each candidate folder's clip features, with the label ids, tracks, classes and probe settings they
    share; the folders must hold the same labelled clips in the same order (linear-eval of one dataset cache)."""
    loaded = [labelled_features(Path(folder)) for folder in group]
    _, y, tracks, classes, cfg = loaded[0]
    for folder, (_, other_y, other_tracks, other_classes, _) in zip(group, loaded):
        if other_classes != classes or not (np.array_equal(other_tracks, tracks) and np.array_equal(other_y, y)):
            raise SystemExit(f"{folder}: not the same labelled clips, in the same order, as {group[0]}")
    return [x for x, *_ in loaded], y, tracks, classes, cfg


def inner_choice(xs: list[np.ndarray], y: np.ndarray, tracks: np.ndarray, rest: np.ndarray, n_classes: int, cfg,
                 k: int, batch: int, seed: int) -> int:
    """The candidate with the best mean clip accuracy over k folds of the tracks `rest` (one probe seed)."""
    scores = np.zeros(len(xs))
    for train, valid, test in folds(y[rest], tracks[rest], k, seed):
        train, valid, test = rest[train], rest[valid], rest[test]
        for c, x in enumerate(xs):
            probe = train_probe(x[train], y[train], x[valid], y[valid], n_classes, False, cfg, batch, 0)
            scores[c] += (probe.scores(x[test]).argmax(1) == y[test]).mean()
    return int(scores.argmax())


def nested_hits(group: list[str], k: int = 5, inner_k: int = 4, probe_seeds: int = 3, batch: int = 256,
                fold_seed: int = 0) -> tuple[dict, list[int]]:
    """Per labelled track, its hits under the candidate its outer fold chose; and the choice of each fold."""
    xs, y, tracks, classes, cfg = aligned_candidates(group)
    rows, chosen = [], []
    for train, valid, test in folds(y, tracks, k, fold_seed):
        c = inner_choice(xs, y, tracks, np.concatenate([train, valid]), len(classes), cfg, inner_k, batch, fold_seed)
        chosen.append(c)
        rows += fold_hits(xs[c], y, tracks, len(classes), cfg, (train, valid, test), probe_seeds, batch)
    return over_seeds(rows), chosen


def main(argv=None) -> None:
    def options(p) -> None:
        p.add_argument("--folds", type=int, default=5)
        p.add_argument("--inner-folds", type=int, default=4)
        p.add_argument("--probe-seeds", type=int, default=3)

    args = parse_pairs(__doc__, argv, options)
    results = {}
    for run in dict.fromkeys(args.a + args.b):
        group = run.split(",")
        results[run], chosen = nested_hits(group, args.folds, args.inner_folds, args.probe_seeds)
        print(f"{run}: candidate chosen per fold (1 = first) {[c + 1 for c in chosen]}", flush=True)
    print(f"{args.folds}-fold track-grouped CV over every labelled track, each fold's readout chosen by "
          f"{args.inner_folds}-fold CV of its own training tracks; {args.probe_seeds} probe seeds per fold")
    report(args.a, args.b, [results[r] for r in args.a], [results[r] for r in args.b])


if __name__ == "__main__":
    main()
