"""Paired comparison of linear-eval runs on the same test tracks (issue 11's paired test).

Each run is a `s3t linear-eval` output folder (clip-cut, single-label) with the per-track test hits of
its probe seeds (test_hits.csv); a track's hits are averaged over the seeds. Runs A[i] and B[i] are a pair
(e.g. S3T and Random Init with pre-training seed i). Prints clip and track top-1 of every run, and for the
pairs the mean difference A - B with a bootstrap over test tracks (the tracks resampled, all pairs
together) and a sign test over the pairs.

    .venv/bin/python benchmarks/paired_probes.py --a runs/le/s3t-0 runs/le/s3t-1 runs/le/s3t-2 \
        --b runs/le/rand-0 runs/le/rand-1 runs/le/rand-2
"""

from __future__ import annotations

import argparse
import csv
import math
import os
from pathlib import Path
from typing import Iterable

import numpy as np


def hits_per_test_track(folder: str | Path) -> dict[str, tuple[float, float, float]]:
    """Per test track of a linear-eval folder, from its test_hits.csv: see `over_seeds`."""
    path = Path(folder) / "test_hits.csv"
    if not path.exists():
        raise SystemExit(f"{path} is missing: rerun `s3t linear-eval` (clip-cut, single-label) into {folder}")
    with open(path, newline="") as f:
        return over_seeds(csv.DictReader(f))


def over_seeds(rows: Iterable[dict]) -> dict[str, tuple[float, float, float]]:
    """Rows of per-track hits (track, clips_right, clips, track_right), one per probe seed, as per track:
    its clips right and its clips, each summed over the seeds, and the share of seeds whose track score is right.
    A track is named by its path below the folder all of them share: runs over copies of one corpus in
    different places (each `s3t demo` writes its own) then name a track alike."""
    sums: dict[str, np.ndarray] = {}
    for row in rows:
        hits = np.array([row["clips_right"], row["clips"], row["track_right"], 1], float)
        sums[row["track"]] = sums.get(row["track"], 0) + hits
    top = os.path.commonpath([os.path.dirname(t) for t in sums])
    return {os.path.relpath(track, top): (h[0], h[1], h[2] / h[3]) for track, h in sums.items()}


def top1(hits: dict, level: str) -> float:
    """Clip top-1 (over all test clips) or track top-1 of one run."""
    if level == "clip":
        return sum(h[0] for h in hits.values()) / sum(h[1] for h in hits.values())
    return float(np.mean([h[2] for h in hits.values()]))


def paired(a: list[dict], b: list[dict], level: str, rounds: int = 10000, seed: int = 0) -> dict:
    """Top-1 of A minus B, averaged over the pairs; its 95 % bootstrap interval with the test tracks
    resampled (the same draw for every pair), and the share of draws where A is not ahead."""
    tracks = sorted(a[0])
    if level == "clip":  # per track: clips right (A - B, summed over pairs) and clips
        num = np.array([sum(ra[t][0] - rb[t][0] for ra, rb in zip(a, b)) for t in tracks], float)
        den = np.array([a[0][t][1] * len(a) for t in tracks], float)
    else:
        num = np.array([sum(ra[t][2] - rb[t][2] for ra, rb in zip(a, b)) for t in tracks], float)
        den = np.full(len(tracks), float(len(a)))
    draws = np.random.default_rng(seed).integers(0, len(tracks), (rounds, len(tracks)))
    boot = num[draws].sum(1) / den[draws].sum(1)
    return {"mean": float(num.sum() / den.sum()), "low": float(np.quantile(boot, 0.025)),
            "high": float(np.quantile(boot, 0.975)), "p_not_better": float((boot <= 0).mean())}


def sign_test(wins: int, n: int) -> float:
    """One-sided P(at least `wins` of `n` pairs favour A | no difference)."""
    return sum(math.comb(n, k) for k in range(wins, n + 1)) / 2**n


def report(a_folders: list[str], b_folders: list[str], a: list[dict], b: list[dict]) -> None:
    """Print top-1 of every run, then the paired test of A against B on clips and on tracks."""
    if any(set(r) != set(a[0]) for r in a + b):
        raise SystemExit("the runs do not share their test tracks")
    for name, runs in (("A", zip(a_folders, a)), ("B", zip(b_folders, b))):
        for folder, hits in runs:
            print(f"{name} {folder}: clip top-1 {top1(hits, 'clip'):.3f}, track top-1 {top1(hits, 'track'):.3f}")
    for level in ("clip", "track"):
        res = paired(a, b, level)
        wins = sum(top1(ra, level) > top1(rb, level) for ra, rb in zip(a, b))
        print(f"{level}: A - B = {res['mean']:+.3f} [95% bootstrap over {len(a[0])} tracks: {res['low']:+.3f}, "
              f"{res['high']:+.3f}], P(A - B <= 0) = {res['p_not_better']:.3f}; "
              f"A ahead in {wins} of {len(a)} pairs (sign test p = {sign_test(wins, len(a)):.3f})")


def parse_pairs(description: str, argv=None, extra=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", nargs="+", required=True, help="linear-eval folders (the candidate)")
    p.add_argument("--b", nargs="+", required=True, help="linear-eval folders, paired with --a in order")
    if extra:
        extra(p)
    args = p.parse_args(argv)
    if len(args.a) != len(args.b):
        p.error("--a and --b need the same number of folders (one pair each)")
    return args


def main(argv=None) -> None:
    args = parse_pairs(__doc__, argv)
    a, b = [hits_per_test_track(f) for f in args.a], [hits_per_test_track(f) for f in args.b]
    report(args.a, args.b, a, b)


if __name__ == "__main__":
    main()
