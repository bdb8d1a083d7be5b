"""Frame-level embedding of a 10-minute track: chunked (`s3t.inference.frames`) against one full pass
(the whole CQT at once, every window built at once, then encoded in batches), each in a fresh process,
peak RSS and time side by side, and the largest difference between their features.

    .venv/bin/python benchmarks/bench_frames.py --manifest /tmp/realmusic-dev.csv [--minutes 10] [--hop 8]

The track is the manifest's files joined end to end (real music); the encoder is the starter weights.
`--hop` in CQT frames (8 = 186 ms keeps the run to minutes on 2 cores; the default of `embed --frames`
is 2 = 46.4 ms: 4× the windows, the same memory for the chunked path, 4× the windows for the full one).
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_track(manifest: str, minutes: float, out: Path) -> None:
    from s3t.audio.decode import SAMPLE_RATE, load_audio

    parts, total = [], 0
    for row in csv.DictReader(open(manifest)):
        parts.append(load_audio(row["path"]))
        total += len(parts[-1])
        if total >= minutes * 60 * SAMPLE_RATE:
            break
    np.save(out, np.concatenate(parts)[: int(minutes * 60 * SAMPLE_RATE)])


def run(way: str, track: Path, hop: int, out: Path) -> None:
    """One way, in this process: writes its features to `out`, prints seconds and peak RSS (MiB)."""
    import torch

    import s3t
    from s3t.audio.constant_q import FLOOR_DB
    from s3t.inference.frames import frame_embeddings, frame_seconds, log_cqt_span, n_frames_of

    wave = np.load(track)
    encoder = s3t.load_encoder()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    if way == "chunked":
        _, feats = frame_embeddings(wave, encoder, hop=hop)
    else:
        F, T = encoder.frames, n_frames_of(encoder, len(wave))
        full = torch.nn.functional.pad(log_cqt_span(wave, 0, T), (F // 2, F), value=FLOOR_DB)
        centres = np.arange(0, T, hop)
        centres = centres[centres * frame_seconds(encoder) <= len(wave) / 22050]
        windows = torch.stack([full[:, c : c + F] for c in centres])  # every window at once
        feats = np.concatenate([encoder(w).numpy() for w in windows.split(32)])
    seconds = time.perf_counter() - start
    np.save(out, feats)
    print(json.dumps({"seconds": seconds, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "rss_before_mib": base, "frames": len(feats)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", required=True, help="a CSV with a 'path' column (the real-music dev corpus)")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--hop", type=int, default=8, help="CQT frames between timestamps")
    p.add_argument("--way", choices=("chunked", "full"), help=argparse.SUPPRESS)  # one child process
    p.add_argument("--track", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.way:
        return run(args.way, Path(args.track), args.hop, Path(args.out))
    with tempfile.TemporaryDirectory() as tmp:
        track = Path(tmp) / "track.npy"
        make_track(args.manifest, args.minutes, track)
        results = {}
        for way in ("chunked", "full"):
            done = subprocess.run([sys.executable, __file__, "--manifest", args.manifest, "--hop", str(args.hop),
                                   "--way", way, "--track", str(track), "--out", f"{tmp}/{way}.npy"],
                                  capture_output=True, text=True, check=True)
            results[way] = json.loads(done.stdout.strip().splitlines()[-1])
        diff = float(np.abs(np.load(f"{tmp}/chunked.npy") - np.load(f"{tmp}/full.npy")).max())
    c, f = results["chunked"], results["full"]
    print(json.dumps({"minutes": args.minutes, "hop_frames": args.hop, **results, "max_abs_diff": diff}, indent=2))
    print(f"chunked / full: time {c['seconds'] / f['seconds']:.2f}x, peak RSS growth "
          f"{c['peak_rss_mib'] - c['rss_before_mib']:.0f} MiB vs {f['peak_rss_mib'] - f['rss_before_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
