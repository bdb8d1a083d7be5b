"""Issue 27's GPU learning check: does the paper's Swin-T learn on real music, at equal wall time with
two hybrid Swins (a resnet stem, then Swin-T's stages 2–4; resnet18 whole, then one Swin stage: the
CPU Swin recipe's backbone at Swin-T's size) and ResNet-50? Each arm pre-trains (MoCo v2)
for the same minutes on the compact real-music cache (benchmarks/learning_cache.py), then a linear probe
reads it and its same-seed Random Init on the dev labels (3 probe seeds; cqt-stats once beside them).
One JSON, rewritten after every arm.

    bash benchmarks/gpu_learning.sh [--minutes-each 1.0] [--out gpu-learning.json]   # one H100/H200
    bash benchmarks/gpu_learning.sh --cpu --cache tiny.npz --out x.json              # the rehearsal

The arms share the paper's recipe with the settings a corpus of a few hundred clips needs (what the CPU
recipe found, benchmarks/RESULTS.md): a queue of one batch, key momentum 0.99, the second view from
another clip of the track, crops at the native rate; no torch.compile (its first minute would be most of
an arm's budget). Epochs are planned from each arm's step time measured on the device.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import torch

from learning_cache import summary, unpack
from s3t.config.loading import load_config
from s3t.data.cache import open_cache
from s3t.data.datasets import load_csv
from s3t.eval.linear_eval import linear_eval
from s3t.inference.encoders import CqtStatsEncoder, random_encoder
from s3t.inference.load import load_encoder
from s3t.workflows.demo import plan_epochs
from s3t.workflows.pretrain import pretrain

ROOT = Path(__file__).parent.parent
SMALL_CORPUS = ["moco.queue_size=128", "moco.momentum=0.99", "augment.positives=track", "augment.crop=native",
                "train.compile=false", "train.checkpoint_every=1000", "probe.lr=1e-2"]
ARMS = {  # name: (configs, overrides)
    "swin_t": (["paper"], []),
    "swin_t_hybrid": (["paper"], ["model.name=swin_t_hybrid"]),
    "swin_t_hybrid32": (["paper"], ["model.name=swin_t_hybrid32"]),
    "resnet50": (["paper"], ["model.name=resnet50"]),
}
TOY_ARMS = {"swin_nano": (["tiny"], []), "resnet_small": (["tiny"], ["model.name=resnet_small"])}
TOY = ["moco.queue_size=8", "train.batch_size=8", "train.max_steps=2", "optim.epochs=1", "train.workers=0",
       "probe.epochs=3", "probe.warmup_epochs=0"]


def run_arm(name: str, configs: list[str], overrides: list[str], data: dict, minutes: float, device: str,
            work: Path, toy: bool) -> dict:
    overrides = overrides + [f"train.device={device}"]
    cfg = load_config(configs, overrides)
    if not toy:  # the epochs that fit the minutes at this arm's step time
        epochs = plan_epochs(cfg, len(open_cache(data["pretrain"])), minutes, device)
        cfg = load_config(configs, overrides + [f"optim.epochs={epochs}"])
    start = time.perf_counter()
    last = pretrain(cfg, data["pretrain"], work / name, progress=False)
    wall = time.perf_counter() - start
    log = list(csv.DictReader(open(work / name / "log.csv")))
    arm = {"configs": configs, "overrides": overrides, "epochs": cfg.optim.epochs, "steps": int(log[-1]["step"]),
           "pretrain_minutes": wall / 60, "samples_per_s": _mean(float(r["samples_per_s"]) for r in log[1:] or log),
           "loss_first": float(log[0]["loss"]), "loss_last": float(log[-1]["loss"])}
    for reading, encoder in (("trained", load_encoder(last, device)),
                             ("random", random_encoder(cfg.model, seed=cfg.train.seed, device=device))):
        arm[reading] = probe(encoder, cfg, data, work / f"{name}-{reading}")
    return arm


def probe(encoder, cfg, data: dict, out: Path) -> dict:
    seeds = 1 if cfg.train.max_steps else 3  # one in the rehearsal
    metrics = linear_eval(load_csv(data["manifest"]), encoder, out, cfg.probe, seeds=seeds, cache_dir=data["dev"],
                          clip_seconds=float(open_cache(data["dev"]).meta["clip_seconds"]), progress=False)
    return {level: metrics[level]["top1_accuracy"]["mean"] for level in ("clip", "track") if level in metrics}


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu", action="store_true", help="toy models and two steps on the CPU (the test of this script)")
    p.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "learning-cache" / "learning.npz")
    p.add_argument("--minutes-each", type=float, default=1.0, help="pre-training minutes of each arm")
    p.add_argument("--arms", nargs="+", help="only these arms")
    p.add_argument("--out", type=Path, default=Path("gpu-learning.json"))
    args = p.parse_args()
    if not args.cpu and not torch.cuda.is_available():
        p.error("no CUDA device visible: run with --cpu for the CPU rehearsal")
    if not args.cache.is_file():
        p.error(f"{args.cache}: no compact cache; build it with benchmarks/learning_cache.py build")
    device = "cpu" if args.cpu else "cuda"
    arms = TOY_ARMS if args.cpu else ARMS
    report = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__,
              "cache": summary(args.cache), "minutes_each": args.minutes_each, "common": SMALL_CORPUS, "arms": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = dict(zip(("pretrain", "dev", "manifest"), unpack(args.cache, work)))
        common = SMALL_CORPUS + (TOY if args.cpu else [])
        report["cqt_stats"] = probe(CqtStatsEncoder(), load_config([], common), data, work / "cqt-stats")
        for name, (configs, overrides) in arms.items():
            if args.arms and name not in args.arms:
                continue
            try:
                report["arms"][name] = run_arm(name, configs, common + overrides, data, args.minutes_each, device, work,
                                               args.cpu)
            except Exception as e:  # one broken arm must not cost the others' numbers
                report["arms"][name] = {"error": f"{type(e).__name__}: {e}"}
            print(name, json.dumps(report["arms"][name]), flush=True)
            args.out.write_text(json.dumps(report, indent=2))
    args.out.write_text(json.dumps(report, indent=2))
    return 1 if any("error" in arm for arm in report["arms"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
