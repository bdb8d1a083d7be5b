"""Pre-training benchmark: a MoCo step against the bare encoder, the loader, FLOP/s against peak.

For each config, in one run and at the same batch B:
  (a) bare encoder forward + backward (the floor of any training step),
  (b) the full training step (augment + pre-process + query and key encoders + loss + backward
      + optimiser + EMA + queue) on batches already in memory, and its parts timed alone,
  (c) DataLoader throughput from a cache (two crops per track) against what (b) consumes;
  (d) the cost of one item's two crops from a 4-min track against a 30-s clip (it should not grow
      with the track: a resized crop reads only the frames its interpolation uses);
plus FLOPs per sample (torch.utils.flop_counter) and achieved FLOP/s against a measured fp32
matmul peak on the same machine.

    .venv/bin/python benchmarks/bench_pretrain.py --cache CACHE [--batch 16] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from s3t.config.loading import load_config
from s3t.data.cache import open_cache
from s3t.data.cache_writer import CacheWriter, Track
from s3t.data.preparation import cache_meta
from s3t.data.views import TwoCropDataset
from s3t.methods.base import spectrogram_views
from s3t.methods.registry import build_method
from s3t.training.loader import EpochSampler
from s3t.training.step import build_optimizer, train_step
from s3t.transforms.augment import resize_time, sample_crop_windows


def mean_time(fn, steps: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def matmul_peak(n: int = 4096) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / mean_time(lambda: a @ b, 3)


def bench_config(name: str, batch: int, steps: int, cache_path: str | None, workers: int | None) -> dict:
    cfg = load_config([name], [f"train.batch_size={batch}", f"moco.queue_size={batch * 16}"])
    torch.manual_seed(0)
    model = build_method(cfg)
    size, frames = cfg.model.input_size, cfg.model.frames
    views = torch.randn(batch, 2, 84, frames) * 20 - 40  # dB-like
    groups = torch.arange(batch)
    x = torch.randn(batch, 1, size, size)

    def bare():
        model.encoder(x).square().mean().backward()

    with FlopCounterMode(display=False) as counter:
        bare()
    flops_per_sample = counter.get_total_flops() / batch
    model.zero_grad(set_to_none=True)

    opt = build_optimizer(model, cfg)
    gen = torch.Generator()
    counter = iter(range(10**9))
    t_bare = mean_time(bare, steps)
    t_step = mean_time(lambda: train_step(model, model, opt, (views, groups), cfg, gen, next(counter), False), steps)
    # the parts of a step, each alone
    t_aug = mean_time(lambda: spectrogram_views(views, cfg, gen), steps)
    with torch.no_grad():
        t_key = mean_time(lambda: model.encode_keys(x), steps)
    t_opt = mean_time(opt.step, steps)
    t_ema = mean_time(model.momentum_step, steps)
    result = {"config": name, "encoder": cfg.model.name, "input": f"{size}x{size}", "batch": batch,
              "bare_fwd_bwd_s": t_bare, "train_step_s": t_step, "step_over_bare": t_step / t_bare,
              "parts_s": {"augment_and_preprocess": t_aug, "key_encoder_forward": t_key,
                          "optimizer_step": t_opt, "momentum_update": t_ema},
              "step_over_bare_plus_key_forward": t_step / (t_bare + t_key),
              "gflops_per_sample_fwd_bwd": flops_per_sample / 1e9,
              "achieved_gflops_bare": flops_per_sample * batch / t_bare / 1e9}
    if cache_path:
        cache = open_cache(cache_path)
        dataset = TwoCropDataset(cache, list(range(len(cache))), frames, cfg.augment, seed=0)
        n_workers = cfg.train.workers if workers is None else workers
        sampler = EpochSampler(len(cache), batch, rank=0, world=1, seed=0)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=n_workers,
                                             drop_last=True, persistent_workers=n_workers > 0)
        n, start = 0, time.perf_counter()
        while n < 4 * batch * max(1, len(cache) // batch):  # a few passes over the corpus, as training reads it
            sampler.epoch += 1
            for views, _ in loader:
                n += len(views)
        loader_rate = n / (time.perf_counter() - start)
        result.update({"loader_workers": n_workers, "loader_samples_per_s": loader_rate,
                       "step_samples_per_s": batch / t_step,
                       "loader_over_consumption": loader_rate / (batch / t_step)})
    return result


def crop_cost(name: str, repeats: int = 200) -> dict:
    """Seconds per item (the paper's two resized crops) from a 4-min track and from a 30-s clip of one cache."""
    cfg = load_config([name])
    meta = cache_meta(time_compression=1, clip_seconds=0.0)
    with tempfile.TemporaryDirectory() as root:
        writer = CacheWriter(root, meta)
        rng = np.random.default_rng(0)
        for seconds in (30, 240):
            spec = (rng.standard_normal((round(seconds * meta["frame_rate"]), 84)) * 20 - 40).astype(np.float16)
            writer.add(Track(f"t{seconds}", f"t{seconds}.wav", spec, float(seconds), {}))
        writer.close()
        dataset = TwoCropDataset(open_cache(root), [0, 1], cfg.model.frames, cfg.augment, seed=0)
        cache, gen = dataset.cache, torch.Generator().manual_seed(0)

        def whole_crops(i):  # what a crop cost before: copy the whole window, then resize it
            windows = sample_crop_windows(int(cache.frames[i]), cfg.augment.crop_ratio, 2, gen)
            return [resize_time(torch.from_numpy(np.array(cache.crop(i, s, n), dtype=np.float32)), cfg.model.frames)
                    for s, n in windows]

        now, before = {}, {}
        for i, seconds in enumerate((30, 240)):
            epochs = iter(range(10**9))
            now[seconds] = mean_time(lambda: dataset[next(epochs), i], repeats)
            before[seconds] = mean_time(lambda: whole_crops(i), repeats)
    return {"config": name, "crop_s": {"30s_clip": now[30], "4min_track": now[240]},
            "4min_over_30s": now[240] / now[30],
            "whole_window_crop_s": {"30s_clip": before[30], "4min_track": before[240]},
            "whole_window_4min_over_30s": before[240] / before[30]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", help="a prepared cache for the loader measurement")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--workers", type=int, help="DataLoader workers (default: the config's)")
    parser.add_argument("--configs", nargs="+", default=["paper", "cpu-small"], help="presets or YAML files")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    peak = matmul_peak()
    results = {"torch_threads": torch.get_num_threads(), "matmul_peak_gflops": peak / 1e9, "configs": []}
    for name in args.configs:
        r = bench_config(name, args.batch, args.steps, args.cache, args.workers)
        r["fraction_of_matmul_peak"] = r["achieved_gflops_bare"] * 1e9 / peak
        results["configs"].append(r)
        print(json.dumps(r, indent=2), flush=True)
    results["crop_cost"] = crop_cost(args.configs[0])
    print(json.dumps({k: v for k, v in results.items() if k != "configs"}, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
