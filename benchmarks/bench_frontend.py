"""Front-end benchmark: CQT vs librosa, decode/resample alone, `prepare` vs the floor of its parts.

Everything is measured side by side in one run on real music (the real-music dev corpus,
../shared/data/realmusic-dev), so the ratios hold on a shared, noisy machine.

    .venv/bin/python benchmarks/bench_frontend.py [--manifest /tmp/realmusic-dev.csv] [--tracks 16]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import librosa
import numpy as np
import psutil
import soundfile as sf
import soxr
import torch

from s3t.audio import constant_q, decode
from s3t.audio.constant_q import log_cqt_frames

CLIP_SECONDS = 30.0


def timed(fn, *args, repeat: int = 1):
    fn(*args)  # warm-up: kernels, caches, first-call costs
    start = time.perf_counter()
    for _ in range(repeat):
        out = fn(*args)
    return (time.perf_counter() - start) / repeat, out


def bench_cqt(clips: np.ndarray) -> dict:
    kw = dict(sr=decode.SAMPLE_RATE, hop_length=constant_q.HOP_LENGTH, fmin=librosa.note_to_hz("C1"), n_bins=84,
              bins_per_octave=12)
    t_librosa, ref = timed(lambda: [np.abs(librosa.cqt(c, **kw)) for c in clips])
    x = torch.from_numpy(clips)
    t_ours, ours = timed(lambda: constant_q.cqt(x, log=False), repeat=3)
    t_single, _ = timed(lambda: [constant_q.cqt(c, log=False) for c in x])
    errors = [np.linalg.norm(o - r) / np.linalg.norm(r) for o, r in zip(ours.numpy(), ref)]
    result = {"clips": len(clips), "librosa_ms_per_clip": 1e3 * t_librosa / len(clips),
              "s3t_batched_ms_per_clip": 1e3 * t_ours / len(clips),
              "s3t_one_at_a_time_ms_per_clip": 1e3 * t_single / len(clips),
              "speedup_vs_librosa": t_librosa / t_ours,
              "rel_error_mean": float(np.mean(errors)), "rel_error_max": float(np.max(errors))}
    if torch.cuda.is_available():
        xg = x.cuda()

        def on_gpu():
            out = constant_q.cqt(xg, log=False)
            torch.cuda.synchronize()
            return out

        t_gpu, out = timed(on_gpu, repeat=10)
        result["gpu_ms_per_clip"] = 1e3 * t_gpu / len(clips)
        result["gpu_speedup_vs_librosa"] = t_librosa / t_gpu
        result["gpu_rel_error_max"] = float(max(np.linalg.norm(o - r) / np.linalg.norm(r)
                                                for o, r in zip(out.cpu().numpy(), ref)))
    return result


def bench_parts(paths: list[str]) -> dict:
    """Each stage of prepare alone, one thread, per whole track: decode, resample, CQT."""
    torch.set_num_threads(1)
    t_decode = t_resample = t_cqt = audio_s = 0.0
    for path in paths:
        start = time.perf_counter()
        data, sr = sf.read(path, dtype="float32", always_2d=True)
        mono = data.mean(axis=1)
        t1 = time.perf_counter()
        wave = soxr.resample(mono, sr, decode.SAMPLE_RATE, quality="HQ") if sr != decode.SAMPLE_RATE else mono
        t2 = time.perf_counter()
        log_cqt_frames(wave, 1)
        t3 = time.perf_counter()
        t_decode, t_resample, t_cqt = t_decode + t1 - start, t_resample + t2 - t1, t_cqt + t3 - t2
        audio_s += len(mono) / sr
    torch.set_num_threads(os.cpu_count() or 1)
    return {"tracks": len(paths), "audio_hours": audio_s / 3600,
            "decode_rtf": audio_s / t_decode, "resample_rtf": audio_s / t_resample, "cqt_rtf": audio_s / t_cqt,
            "floor_seconds_one_worker": t_decode + t_resample + t_cqt}


def floor_of(parts: dict, paths: list[str]) -> float:
    """The floor's share of `paths`, pro rata to audio duration."""
    seconds = sum(sf.info(p).duration for p in paths)
    return parts["floor_seconds_one_worker"] * seconds / (parts["audio_hours"] * 3600)


def write_manifest(paths: list[str], folder: Path, name: str) -> Path:
    manifest = folder / name
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path"])
        w.writerows([p] for p in paths)
    return manifest


def run_prepare(manifest: Path, out: Path, workers: int, shard_mb: float, watch_memory: bool = False
                ) -> tuple[float, float]:
    """Wall seconds and, with `watch_memory`, peak RSS (MiB, the process and its workers
    together) of `s3t prepare`. Watching costs CPU, so timed runs do not watch."""
    cmd = [sys.executable, "-m", "s3t", "prepare", str(manifest), "--out", str(out), "--workers", str(workers),
           "--shard-mb", str(shard_mb), "--no-progress"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    done = threading.Event()

    def watch():
        nonlocal peak
        parent = psutil.Process(proc.pid)
        while watch_memory and not done.is_set():
            try:
                rss = parent.memory_info().rss + sum(c.memory_info().rss for c in parent.children(recursive=True))
                peak = max(peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    watcher.join()
    if proc.returncode != 0:
        raise RuntimeError(f"prepare failed: {err.decode()[-2000:]}")
    return wall, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", default=os.environ.get("S3T_REALMUSIC", "/tmp/realmusic-dev.csv"))
    parser.add_argument("--tracks", type=int, default=0,
                        help="tracks for the timed prepare runs (default: all); memory compares half of them to all")
    parser.add_argument("--clips", type=int, default=16, help="30-s clips for the CQT comparison")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if not Path(args.manifest).is_file():
        sys.exit(f"{args.manifest} not found: build it with ../shared/data/realmusic-dev/build.sh {args.manifest}")
    rows = list(csv.DictReader(open(args.manifest)))
    rng = np.random.default_rng(0)
    rows = [rows[i] for i in rng.permutation(len(rows))]

    clips = np.stack([decode.load_audio(r["path"], offset=10.0, duration=CLIP_SECONDS)[: int(CLIP_SECONDS * 22050)]
                      for r in rows[: args.clips]])
    results = {"torch_threads": torch.get_num_threads(), "cqt": bench_cqt(clips)}
    paths = [r["path"] for r in rows[: args.tracks or len(rows)]]
    results["parts"] = bench_parts(paths)

    floor = results["parts"]["floor_seconds_one_worker"]
    hours = results["parts"]["audio_hours"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = write_manifest(paths, tmp, "one.csv")
        wall1, _ = run_prepare(manifest, tmp / "w1", 1, 64)
        wall2, _ = run_prepare(manifest, tmp / "w2", 2, 64)
        # the fixed cost of a run: interpreter, torch import, worker start-up, kernels
        tiny = write_manifest(paths[:1], tmp, "tiny.csv")
        startup1 = run_prepare(tiny, tmp / "s1", 1, 64)[0] - floor_of(results["parts"], paths[:1])
        startup2 = run_prepare(tiny, tmp / "s2", 2, 64)[0] - floor_of(results["parts"], paths[:1])
        half = write_manifest(paths[: len(paths) // 2], tmp, "half.csv")
        _, rss1 = run_prepare(half, tmp / "m1", 2, 8, watch_memory=True)
        _, rss2 = run_prepare(manifest, tmp / "m2", 2, 8, watch_memory=True)
    results["prepare"] = {
        "workers1_seconds": wall1, "workers2_seconds": wall2,
        "workers1_hours_per_minute": hours / wall1 * 60, "workers2_hours_per_minute": hours / wall2 * 60,
        "workers1_vs_floor": floor / wall1, "workers2_vs_floor": (floor / 2) / wall2,
        "speedup_2_vs_1": wall1 / wall2,
        "startup_seconds_1_worker": startup1, "startup_seconds_2_workers": startup2,
        "workers1_vs_floor_after_startup": floor / (wall1 - startup1),
        "workers2_vs_floor_after_startup": (floor / 2) / (wall2 - startup2),
        "peak_rss_mib_half_input": rss1, "peak_rss_mib_full_input": rss2, "rss_growth_2x_input": rss2 / rss1,
    }
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
