"""Where one MoCo training step spends its time on a GPU (issue 13): each part timed alone with CUDA
events, then a few whole steps under torch.profiler (top kernels by GPU time, top ops by CPU time,
and how busy the GPU was). Run on the device machine with the wheels of gpu_check.sh on the path;
`--cpu` runs it on the CPU (tests/test_gpu_check.py, so that it cannot rot):

    PYTHONPATH=src python3 benchmarks/gpu_profile.py [--batch 256] [--config paper] [--out profile.txt]
"""

from __future__ import annotations

import argparse
import time

import torch
from gpu_check import synchronize

from s3t.config.loading import load_config
from s3t.methods.base import spectrogram_views
from s3t.methods.registry import build_method
from s3t.training.step import build_optimizer, speed_up, train_step


def median_ms(fn, device: torch.device, repeats: int = 10) -> float:
    """Median milliseconds of fn, after two warm-up calls."""
    fn(), fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return sorted(times)[len(times) // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--config", default="paper")
    p.add_argument("--out", default="profile.txt")
    p.add_argument("--set", nargs="*", default=[], help="config overrides")
    p.add_argument("--cpu", action="store_true", help="on the CPU (the test of this script)")
    args = p.parse_args()
    device = torch.device("cpu" if args.cpu else "cuda")
    use_amp = device.type == "cuda"
    cfg = load_config([args.config], [f"train.batch_size={args.batch}", *args.set])
    torch.manual_seed(0)
    method = build_method(cfg).to(device)
    speed_up(method, cfg, device)
    opt = build_optimizer(method, cfg)
    views = (torch.randn(args.batch, 2, 84, cfg.model.frames, device=device) * 20 - 40,
             torch.arange(args.batch, device=device))
    gen, steps = torch.Generator(device=device), iter(range(10**9))

    def step():
        train_step(method, method, opt, views, cfg, gen, next(steps), use_amp)

    x = spectrogram_views(views[0], cfg, gen)
    bf16 = torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp)

    def query_fwd_bwd():
        with bf16:
            out = method.encoder(x[:, 0]).float().sum()
        out.backward()

    @torch.no_grad()
    def key_fwd():
        with bf16:
            method._project_k(x[:, 1])

    parts = {"whole step": step, "augment + pre-process": lambda: spectrogram_views(views[0], cfg, gen),
             "query encoder fwd+bwd": query_fwd_bwd, "key encoder fwd": key_fwd,
             "optimizer step": opt.step, "momentum update": method.after_step}
    name = torch.cuda.get_device_name() if use_amp else "cpu"
    lines = [f"{args.config} batch {args.batch} on {name}, torch {torch.__version__}"]
    for name, fn in parts.items():
        ms = median_ms(fn, device)
        lines.append(f"{name:28s} {ms:8.2f} ms" + (f"  ({args.batch / ms * 1e3:.0f} samples/s)"
                                                    if name == "whole step" else ""))
    opt.zero_grad(set_to_none=True)

    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if use_amp else [])
    synchronize(device)
    with torch.profiler.profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(5):
            step()
        synchronize(device)
        wall = time.perf_counter() - start
    events = prof.key_averages()
    kernels = [e for e in events if e.device_type.name == "CUDA"]  # the ops above them carry the same time again
    busy = sum(e.self_device_time_total for e in kernels) / 1e6
    lines.append(f"profiled 5 steps: wall {wall * 1e3:.0f} ms, GPU kernels {busy * 1e3:.0f} ms "
                 f"({busy / wall:.0%} busy), kernels launched {sum(e.count for e in kernels)}")
    lines.append(events.table(sort_by="self_device_time_total", row_limit=30))
    lines.append(events.table(sort_by="self_cpu_time_total", row_limit=20))
    text = "\n".join(lines)
    open(args.out, "w").write(text)
    print("\n".join(lines[:8]))  # the timings and the busy line; the tables are in --out


if __name__ == "__main__":
    main()
