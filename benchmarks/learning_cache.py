"""The compact real-music cache that travels to a GPU lease with the tree (issue 27): a share of a
prepared pre-training cache and of a prepared labeled dev cache, log-CQTs quantised to 8 bits
(0.5-dB steps from the floor, −100 dB, to +27.5 dB: real music reaches +27 dB) and compressed, in one
.npz of at most a few tens of MiB.

    python benchmarks/learning_cache.py build --pretrain PT_CACHE --dev DEV_CACHE --out learning.npz [--mib 46]

`unpack` turns it back into two s3t caches and the dev set's manifest, as `s3t prepare` and `linear-eval`
wrote them (ids, sources, metadata), so that nothing reads audio on the GPU machine. The dev cache must
come from a manifest with `label` and `split` columns (what `linear-eval --cache` prepares).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import zlib
from itertools import zip_longest
from pathlib import Path

import numpy as np

from s3t.audio.constant_q import FLOOR_DB
from s3t.data.cache import open_cache, track_names
from s3t.data.cache_writer import CacheWriter, Track

CEILING_DB = 27.5
STEP_DB = (CEILING_DB - FLOOR_DB) / 255  # one quantisation step
DEV_CLIPS_PER_TRACK = 2


def quantise(spec: np.ndarray) -> np.ndarray:
    return np.clip(np.rint((spec.astype(np.float32) - FLOOR_DB) / STEP_DB), 0, 255).astype(np.uint8)


def dequantise(q: np.ndarray) -> np.ndarray:
    return (q.astype(np.float32) * STEP_DB + FLOOR_DB).astype(np.float16)


def spread(cache, per_track: int, rounds: bool = True) -> list[int]:
    """At most `per_track` entries of each of the cache's tracks, in an order that covers every track before
    a second clip of any (`rounds`), or track after track (so that a cut keeps two clips of each track:
    the pretext's second view comes from another clip of the same track)."""
    by_track: dict[str, list[int]] = {}
    for i, name in enumerate(track_names(cache)):
        by_track.setdefault(name, []).append(i)
    if not rounds:
        return [i for clips in by_track.values() for i in clips[:per_track]]
    return [i for clips in zip_longest(*(c[:per_track] for c in by_track.values())) for i in clips if i is not None]


def pack(cache, order: list[int], budget: int) -> tuple[dict, np.ndarray, int]:
    """Entries of `order` while their compressed 8-bit spectrograms fit `budget` bytes; and the bytes used."""
    entries, specs, used = [], [], 0
    for i in order:
        q = quantise(cache[i].T)  # (frames, 84)
        size = len(zlib.compress(q.tobytes(), 6))
        if used + size > budget:
            break
        meta = cache.metadata(i)
        entry = {k: meta.pop(k) for k in ("track_id", "source", "duration")}
        entries.append(entry | {"frames": len(q), "metadata": meta})
        specs.append(q)
        used += size
    return {"cache_meta": cache.meta, "entries": entries}, np.concatenate(specs), used


def build(pretrain: Path, dev: Path, out: Path, mib: float) -> dict:
    """Write the compact cache: the dev set first (every track, up to two clips each), then as much of the
    pre-training corpus as the rest of `mib` holds, two clips of each track."""
    dev_cache, pt_cache = open_cache(dev), open_cache(pretrain)
    budget = int(mib * 2**20)
    dev_index, dev_specs, used = pack(dev_cache, spread(dev_cache, DEV_CLIPS_PER_TRACK), budget)
    # 64 KiB left for the index and the zip overhead
    pt_index, pt_specs, _ = pack(pt_cache, spread(pt_cache, 2, rounds=False), budget - used - 2**16)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, pretrain=pt_specs, dev=dev_specs,
                        index=np.frombuffer(json.dumps({"pretrain": pt_index, "dev": dev_index}).encode(), np.uint8))
    return {"file": str(out), "mib": out.stat().st_size / 2**20, **summary(out)}


def summary(path: Path) -> dict:
    index = _index(np.load(path))
    return {name: {"entries": len(part["entries"]), "hours": sum(e["duration"] for e in part["entries"]) / 3600,
                   "tracks": len({e["metadata"].get("track", e["track_id"]) for e in part["entries"]})}
            for name, part in index.items()}


def _index(data) -> dict:
    return json.loads(data["index"].tobytes())


def unpack(path: Path, work: Path) -> tuple[Path, Path, Path]:
    """The compact cache as (pre-training cache, dev cache, dev manifest) under `work`."""
    data = np.load(path)
    index = _index(data)
    roots = {}
    for name in ("pretrain", "dev"):
        roots[name] = work / f"{name}-cache"
        writer = CacheWriter(roots[name], {k: v for k, v in index[name]["cache_meta"].items() if k != "format_version"})
        specs, offset = data[name], 0
        for e in index[name]["entries"]:
            spec = dequantise(specs[offset : offset + e["frames"]])
            writer.add(Track(e["track_id"], e["source"], spec, e["duration"], e["metadata"]))
            offset += e["frames"]
        writer.close()
    manifest = work / "dev.csv"
    _write_manifest(index["dev"]["entries"], manifest)
    return roots["pretrain"], roots["dev"], manifest


def _write_manifest(entries: list[dict], path: Path) -> None:
    rows = {}  # one row per track, as the manifest the dev cache was prepared from
    for e in entries:
        rows.setdefault(e["source"], (e["metadata"]["label"], e["metadata"]["split"]))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["path", "label", "split"])
    writer.writerows((source, label, split) for source, (label, split) in rows.items())
    path.write_text(buffer.getvalue())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("--pretrain", required=True, type=Path, help="prepared pre-training cache (30-s clips)")
    b.add_argument("--dev", required=True, type=Path, help="prepared labeled dev cache (linear-eval's --cache)")
    b.add_argument("--out", required=True, type=Path)
    b.add_argument("--mib", type=float, default=46.0, help="size limit of the file")
    args = p.parse_args()
    print(json.dumps(build(args.pretrain, args.dev, args.out, args.mib), indent=2))


if __name__ == "__main__":
    main()
