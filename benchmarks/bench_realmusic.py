"""S3T vs Random Init on real music: pre-train the CPU preset on the train tracks of the
real-music dev corpus (../shared/data/realmusic-dev builds it), then linear probes of both
encoders on its split (each soundtrack a class; split by track, probed per 30-s clip and per
track). Prints the table and writes benchmarks/realmusic-latest.json.

    python benchmarks/bench_realmusic.py --manifest /tmp/realmusic-dev.csv --work /tmp/rm-bench \\
        [--config cpu-small] [--set optim.epochs=30 ...] [--clip-seconds 30]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections import Counter
from pathlib import Path

from s3t.config.loading import load_config
from s3t.data.datasets import load_csv
from s3t.data.labeled_set import with_validation
from s3t.workflows.demo import pretrain_and_probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", default="/tmp/realmusic-dev.csv")
    parser.add_argument("--work", default="/tmp/rm-bench", help="caches, run and probes (resumable)")
    parser.add_argument("--config", default="cpu-small")
    parser.add_argument("--set", nargs="*", default=[], dest="overrides")
    parser.add_argument("--clip-seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", default=str(Path(__file__).with_name("realmusic-latest.json")))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    start = time.perf_counter()
    dataset = with_validation(load_csv(args.manifest))  # train and test only: validation comes out of train
    test_labels = Counter(item.labels[0] for item in dataset.split("test"))
    cfg = load_config([args.config], args.overrides)
    results, times = pretrain_and_probe(dataset, Path(args.work), cfg, clip_seconds=args.clip_seconds,
                                        workers=args.workers, progress=False)
    record = {"manifest": args.manifest, "config": args.config, "overrides": args.overrides,
              "classes": len(dataset.classes), "tracks": dataset.counts(), "clip_seconds": args.clip_seconds,
              "majority_class_track_top1": max(test_labels.values()) / sum(test_labels.values()),
              "wall_seconds": {**times, "total": time.perf_counter() - start},
              "protocol": results["s3t"]["protocol"],
              "results": {name: {level: {k: {"mean": v["mean"], "std": v["std"]} for k, v in m[level].items()
                                         if k != "seed0"}
                                 for level in ("clip", "track") if level in m}
                          for name, m in results.items()}}
    Path(args.json).write_text(json.dumps(record, indent=2))
    print(f"{'encoder':<12} {'clip top-1':>10} {'track top-1':>11} {'track top-5':>11}")
    for name, r in record["results"].items():
        clip = r.get("clip", {}).get("top1_accuracy", {"mean": float("nan")})["mean"]
        print(f"{name:<12} {clip:>10.3f} {r['track']['top1_accuracy']['mean']:>11.3f} "
              f"{r['track']['top5_accuracy']['mean']:>11.3f}")
    print(f"majority class, track top-1: {record['majority_class_track_top1']:.3f}")
    print(json.dumps(record["wall_seconds"], indent=1))


if __name__ == "__main__":
    main()
