"""One device check per GPU lease (issue 13), run by `benchmarks/gpu_check.sh`: every number the GPU
path needs, written to one JSON after each section, so a check cut short still reports what it did.

Sections: the CUDA tests; the GPU CQT against the CPU one (error) and against librosa (speed, when
librosa is there); the loader alone (items/s at 8 and 12 workers); the MoCo training step alone at
batch 128 and 256 (samples/s, peak memory, MFU against 790 TFLOP/s bf16) without `train.compile`,
and at 256 with it; `s3t pretrain --config paper` end to end for 60 steps, then `--resume`; `embed` on
the GPU against the CPU. `--cpu` runs each section at toy sizes on the CPU (a test, so it cannot rot).

    bash benchmarks/gpu_check.sh [--cpu] [--out gpu_check.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch._dynamo.utils import counters
from torch.utils.flop_counter import FlopCounterMode

from s3t.config.loading import load_config
from s3t.data.cache import open_cache
from s3t.data.cache_writer import CacheWriter, Track
from s3t.data.preparation import cache_meta
from s3t.data.views import TwoCropDataset
from s3t.methods.registry import build_method
from s3t.training.loader import training_loader
from s3t.training.step import build_optimizer, speed_up, train_step

ROOT = Path(__file__).resolve().parent.parent
PEAK_BF16 = 790e12  # an H100/H200's dense bf16 matrix rate, as measured on these machines

FULL = {"config": "paper", "batches": (128, 256), "compile_batches": (256,), "workers": (8, 12), "items": 1024,
        "item_frames": 2600, "steps": 20, "e2e_steps": 60, "clips": 16, "clip_s": 30.0, "loader_s": 10.0}
TOY = {"config": "tiny", "batches": (4,), "compile_batches": (4,), "workers": (0, 2), "items": 32,
       "item_frames": 300, "steps": 1, "e2e_steps": 4, "clips": 2, "clip_s": 5.0, "loader_s": 0.0}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, repeats: int, device: torch.device) -> float:
    """Seconds per call of fn, after one warm-up call."""
    fn()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / repeats


def synthetic_cache(work: Path, size: dict) -> Path:
    """A cache of random log-CQTs, made once per check (the loader and training read no audio)."""
    root, items, frames = work / "cache", size["items"], size["item_frames"]
    if root.exists():
        return root
    writer = CacheWriter(root, cache_meta(time_compression=1))
    rng = np.random.default_rng(0)
    for i in range(items):
        spec = (rng.standard_normal((frames, 84)) * 20 - 40).astype(np.float16)
        writer.add(Track(f"t{i:05d}", f"t{i:05d}.wav", spec, frames / 43.0, {}))
    writer.close()
    return root


def cuda_tests(size: dict, device: torch.device, work: Path) -> dict:
    if device.type != "cuda":
        return {"skipped": "no CUDA in --cpu mode"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests"],
                            cwd=ROOT, capture_output=True, text=True, timeout=240)
    return {"returncode": result.returncode, "summary": result.stdout.strip().splitlines()[-1:]}


def cqt_check(size: dict, device: torch.device, work: Path) -> dict:
    from s3t.audio import constant_q
    from s3t.audio.synth import STYLES, synth_track

    styles = list(STYLES)
    clips = torch.from_numpy(np.stack([synth_track(styles[s % len(styles)], seed=s, sections=1,
                                                   section_seconds=size["clip_s"]) for s in range(size["clips"])]))
    reference = constant_q.cqt(clips, log=False)
    on_device = constant_q.cqt(clips.to(device), log=False)
    error = float((on_device.cpu() - reference).abs().max() / reference.abs().max())
    per_clip = timed(lambda: constant_q.cqt(clips.to(device), log=False), 3, device) / len(clips)
    result = {"clips": len(clips), "clip_s": size["clip_s"], "seconds_per_clip": per_clip, "max_error_vs_cpu": error}
    try:
        import librosa
    except ImportError:
        return {**result, "librosa": "not installed"}
    wave = clips[0].numpy()
    lib = timed(lambda: librosa.cqt(wave, sr=22050, hop_length=512, n_bins=84, bins_per_octave=12), 2,
                torch.device("cpu"))
    return {**result, "librosa_seconds_per_clip": lib, "speed_over_librosa": lib / per_clip}


def loader_check(size: dict, device: torch.device, work: Path) -> dict:
    """Items/s of the loader `fit` trains from, at the compiled step's batch, in the steady state of a
    long epoch: the keys of many epochs in one pass, so that the few batches of the small synthetic
    cache do not measure the refill of the workers' queue at every epoch's start."""
    cache = open_cache(synthetic_cache(work, size))
    batch = size["compile_batches"][0]
    rates = {"batch": batch}
    cfg = load_config([size["config"]])
    dataset = TwoCropDataset(cache, list(range(len(cache))), cfg.model.frames, cfg.augment, seed=0)
    for workers in size["workers"]:
        cfg = load_config([size["config"]], [f"train.batch_size={batch}", f"train.workers={workers}"])
        keys = [(epoch, i) for epoch in range(1000) for i in range(len(cache))]
        batches = iter(training_loader(dataset, keys, cfg, device))
        next(batches)  # workers started
        start, n = time.perf_counter(), 0
        while n == 0 or time.perf_counter() - start < size["loader_s"]:
            n += len(next(batches)[0])
        rates[f"items_per_s_{workers}_workers"] = n / (time.perf_counter() - start)
    return rates


def step_check(size: dict, device: torch.device, work: Path, compile: bool = False) -> dict:
    results = {}
    for batch in size["compile_batches" if compile else "batches"]:
        if compile:  # each size compiled afresh, with its own count of graphs and breaks
            torch._dynamo.reset()
            counters.clear()
        overrides = [f"train.batch_size={batch}", f"train.compile={str(compile).lower()}"]
        if device.type == "cpu":
            overrides.append("train.compile_backend=eager")  # the rehearsal tests the path, not inductor's C++
        cfg = load_config([size["config"]], overrides)
        torch.manual_seed(0)
        method = build_method(cfg).to(device)
        speed_up(method, cfg, device)
        opt = build_optimizer(method, cfg)
        views = (torch.randn(batch, 2, 84, cfg.model.frames, device=device) * 20 - 40,
                 torch.arange(batch, device=device))
        gen, amp, steps = torch.Generator(device=device), device.type == "cuda", iter(range(10**9))

        def step():
            train_step(method, method, opt, views, cfg, gen, next(steps), amp)

        start = time.perf_counter()
        step()  # compiles, with train.compile
        synchronize(device)
        first = time.perf_counter() - start
        with FlopCounterMode(display=False) as flops, torch.compiler.set_stance("force_eager"):
            step()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds = timed(step, size["steps"], device)
        results[f"batch_{batch}"] = {
            "samples_per_s": batch / seconds, "first_step_s": first,
            "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
            "tflop_per_step": flops.get_total_flops() / 1e12,
            "mfu_vs_790_tflops": flops.get_total_flops() / seconds / PEAK_BF16}
        if compile:
            results[f"batch_{batch}"].update(graphs=counters["stats"]["unique_graphs"],
                                             graph_breaks=sum(counters["graph_break"].values()),
                                             frames=dict(counters["frames"]))
    return results


def end_to_end(size: dict, device: torch.device, work: Path) -> dict:
    cache = synthetic_cache(work, size)
    run = work / "e2e-run"
    base = [sys.executable, "-m", "s3t", "pretrain", "--data", str(cache), "--out", str(run), "--config",
            size["config"], "--no-progress", "--set", f"train.device={device.type}", "train.log_every=10"]
    steps = size["e2e_steps"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    results = {}
    # the run as a user starts it (compiled on a GPU); its resume eager, as a second ~90-s compile would not
    # fit in the check's 8 minutes: a compiled run's checkpoint must load into an eager one anyway
    for name, extra in (("run", [f"train.max_steps={steps}"]),
                        ("resume", [f"train.max_steps={steps + steps // 2}", "train.compile=false"])):
        start = time.perf_counter()
        done = subprocess.run(base + extra + (["--resume"] if name == "resume" else []), capture_output=True,
                              text=True, timeout=300, env=env)
        if done.returncode:
            raise RuntimeError(f"{name}: exit {done.returncode}: {done.stderr[-1500:]}")
        rows = list(csv.DictReader(open(run / "log.csv")))
        results[name] = {"wall_s": time.perf_counter() - start, "last_step": int(rows[-1]["step"]),
                         "samples_per_s": float(rows[-1]["samples_per_s"]), "loss": float(rows[-1]["loss"]),
                         "resumed": "resumed" in done.stderr}
    return results


def embed_check(size: dict, device: torch.device, work: Path) -> dict:
    from s3t.inference.features import extract_features
    from s3t.inference.load import load_encoder

    last = work / "e2e-run" / "last.pt"
    cache = open_cache(work / "cache")
    items = list(range(min(16, len(cache))))
    cpu = extract_features(cache, load_encoder(last, "cpu"), items, progress=False)
    here = extract_features(cache, load_encoder(last, str(device)), items, progress=False)
    return {"items": len(items), "max_abs_diff": float(np.abs(here - cpu).max()),
            "relative": float(np.abs(here - cpu).max() / np.abs(cpu).max())}


SECTIONS = [("cuda_tests", cuda_tests), ("cqt", cqt_check), ("loader", loader_check), ("step", step_check),
            ("end_to_end", end_to_end), ("embed", embed_check),
            ("step_compiled", lambda *a: step_check(*a, compile=True))]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu", action="store_true", help="toy sizes on the CPU (the test of this script)")
    p.add_argument("--out", default="gpu_check.json")
    p.add_argument("--sections", nargs="+", choices=[n for n, _ in SECTIONS], help="only these (a rerun of "
                   "what broke; embed needs end_to_end's checkpoint)")
    args = p.parse_args()
    if not args.cpu and not torch.cuda.is_available():
        p.error("no CUDA device visible: run with --cpu for the CPU rehearsal")
    device = torch.device("cpu" if args.cpu else "cuda")
    size = TOY if args.cpu else FULL
    report = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "sizes": size}
    # the rehearsal leaves compiling out: tests/test_engine.py compiles a training run already
    sections = [(n, f) for n, f in SECTIONS if not (args.cpu and n == "step_compiled")
                and (not args.sections or n in args.sections)]
    with tempfile.TemporaryDirectory() as work:
        for name, section in sections:
            start = time.perf_counter()
            try:
                report[name] = section(size, device, Path(work))
            except Exception as e:  # one broken section must not cost the others' numbers
                report[name] = {"error": f"{type(e).__name__}: {e}"}
            report[name]["seconds"] = time.perf_counter() - start
            print(name, json.dumps(report[name]), flush=True)
            Path(args.out).write_text(json.dumps(report, indent=2, default=_plain))
    return 1 if any("error" in v for v in report.values() if isinstance(v, dict)) else 0


def _plain(x):
    return None if isinstance(x, float) and not math.isfinite(x) else str(x)


if __name__ == "__main__":
    sys.exit(main())
