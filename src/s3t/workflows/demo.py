"""`s3t demo`: the whole method on a built-in corpus, no data needed.

Synthesise a labeled corpus -> prepare -> pre-train the CPU preset on the train split (the `demo`
preset's 100 epochs, or about M minutes with `minutes`) -> linear probes of the pre-trained and of a
random-init encoder -> a report.
Every stage is resumable: run it again and finished stages are skipped.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import torch

from s3t.audio import synth
from s3t.config.loading import load_config
from s3t.config.schema import Config
from s3t.data.datasets import load_folder
from s3t.data.labeled_cache import write_manifest
from s3t.data.labeled_set import LabeledSet, with_validation
from s3t.data.preparation import prepare
from s3t.eval.linear_eval import linear_eval, mean_std
from s3t.inference.encoders import CqtStatsEncoder, random_encoder
from s3t.inference.load import load_encoder
from s3t.methods.registry import build_method
from s3t.training.step import build_optimizer, train_step
from s3t.workflows.pretrain import pretrain

log = logging.getLogger(__name__)


def seconds_per_step(cfg: Config, repeats: int = 2, device: str | torch.device = "cpu") -> float:
    """Wall time of one training step of `cfg` on `device` (after a warm-up step; bf16 on a GPU if
    `train.amp`, as training runs it)."""
    device = torch.device(device)
    torch.manual_seed(0)
    method = build_method(cfg).to(device)
    opt = build_optimizer(method, cfg)
    batch = (torch.randn(cfg.train.batch_size, 2, 84, cfg.model.frames, device=device) * 20 - 30,
             torch.arange(cfg.train.batch_size, device=device))
    gen, amp = torch.Generator(device), cfg.train.amp and device.type == "cuda"
    train_step(method, method, opt, batch, cfg, gen, 0, amp)
    _synchronize(device)
    start = time.perf_counter()
    for step in range(repeats):
        train_step(method, method, opt, batch, cfg, gen, step + 1, amp)
    _synchronize(device)
    return (time.perf_counter() - start) / repeats


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plan_epochs(cfg: Config, n_train: int, minutes: float | None, device: str | torch.device = "cpu") -> int:
    """The config's epochs; with `minutes`, the epochs that fit them at the step time measured on `device`,
    plus the 20 % that loading, logging and checkpoints added in measured demo runs."""
    if minutes is None:
        return cfg.optim.epochs
    steps_per_epoch = max(1, n_train // cfg.train.batch_size)
    return max(1, int(minutes * 60 / (1.2 * seconds_per_step(cfg, device=device)) / steps_per_epoch))


CONFIGS = ("cpu-small", "demo")  # the CPU recipe, with an input of one demo clip
FEW_LABELS = 0.1  # the label fraction of the second probe: where pre-training should help most
SATURATED = 0.95  # Random Init's top-1 from which the report says the corpus cannot show a gain


def pretrain_and_probe(dataset: LabeledSet, out: Path, cfg: Config, clip_seconds: float = 0.0, workers: int = 2,
                       progress: bool = True) -> tuple[dict, dict[str, float]]:
    """Prepare `dataset` into `out`/cache, pre-train on its train split (resumably) and probe the
    pre-trained and a random-init encoder, and the cqt-stats reference, on it, with all labels and with
    FEW_LABELS of them (3 draws). Returns metrics keyed 's3t', 'random', 'cqt-stats' and each with '-few',
    and stage times."""
    dataset = with_validation(dataset)
    times: dict[str, float] = {}
    t = time.perf_counter()
    write_manifest(dataset, out / "manifest.csv")
    prepare(out / "manifest.csv", out / "cache", workers=workers, clip_seconds=clip_seconds, progress=progress)
    times["prepare"] = time.perf_counter() - t

    t = time.perf_counter()
    checkpoint = pretrain(cfg, out / "cache", out / "run", resume=True, split="train", progress=progress)
    times["pre-train"] = time.perf_counter() - t

    results = {}
    encoders = (("s3t", load_encoder(checkpoint)), ("random", random_encoder(cfg.model, seed=cfg.train.seed)),
                ("cqt-stats", CqtStatsEncoder()))
    for name, encoder in encoders:
        t = time.perf_counter()
        results[name] = linear_eval(dataset, encoder, out / f"probe-{name}", cfg.probe, cache_dir=out / "cache",
                                    clip_seconds=clip_seconds, workers=workers, progress=progress)
        results[f"{name}-few"] = linear_eval(dataset, encoder, out / f"probe-{name}-few", cfg.probe,
                                             label_fraction=FEW_LABELS, seeds=3, cache_dir=out / "cache",
                                             clip_seconds=clip_seconds, workers=workers, progress=progress)
        times[f"linear probes ({name})"] = time.perf_counter() - t
    return results, times


def run_demo(out: str | Path = "demo", minutes: float | None = None, tracks_per_style: int = 40, workers: int = 2,
             configs: tuple[str, ...] = CONFIGS, overrides: tuple[str, ...] = (), progress: bool = True) -> Path:
    """Run the demo into `out`; returns the report's path. Pre-training runs the config's epochs, or, with
    `minutes`, as many as a measured step time fits in them (a schedule that then moves with the machine's load)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    dataset = load_folder(synth.write_corpus(out / "corpus", tracks_per_style=tracks_per_style), seed=0)
    synth_seconds = time.perf_counter() - t

    plan_file = out / "plan.json"
    if plan_file.exists():  # a resumed demo keeps the schedule it started with
        epochs = json.loads(plan_file.read_text())["epochs"]
    else:
        epochs = plan_epochs(load_config(configs, overrides), synth.SECTIONS * len(dataset.split("train")), minutes)
        plan_file.write_text(json.dumps({"epochs": epochs, "minutes": minutes}))
    cfg = load_config(configs, [*overrides, f"optim.epochs={epochs}"])
    log.info("pre-training %s for %d epochs", cfg.model.name, epochs)
    results, times = pretrain_and_probe(dataset, out, cfg, clip_seconds=synth.SECTION_SECONDS, workers=workers,
                                        progress=progress)
    shutil.copy(out / "run" / "loss.png", out / "loss.png")
    report = out / "report.md"
    report.write_text(demo_report(results, {"synthesise corpus": synth_seconds, **times}, cfg, dataset.counts(),
                                  epochs))
    return report


def demo_report(results: dict, times: dict[str, float], cfg: Config, counts: dict, epochs: int) -> str:
    levels = ("track", "clip")
    lines = ["# S3T demo", "",
             f"Built-in synthetic corpus: {len(results['s3t']['classes'])} styles "
             f"({', '.join(results['s3t']['classes'])}), tracks split {counts['train']} train / {counts['valid']} "
             f"valid / {counts['test']} test, each cut into {synth.SECTIONS} clips of {synth.SECTION_SECONDS:.0f} s "
             "(its sections: each draws its own voice, key, tempo, register, mix, noise and EQ). Pre-trained without "
             f"labels on the train clips: `{cfg.model.name}` on inputs of {cfg.model.frames} frames, {epochs} epochs, "
             f"batch {cfg.train.batch_size}. Then a linear probe on frozen features; a track's score is the mean of "
             "its clips'.", "",
             "| encoder | track top-1 | clip top-1 | "
             + " | ".join(f"{level} top-1, {FEW_LABELS:.0%} of the labels (3 draws)" for level in levels) + " |",
             "| --- |" + " --- |" * 4]
    rows = (("s3t", "S3T (pre-trained)"), ("random", "Random Init"), ("cqt-stats", "cqt-stats (no encoder)"))
    top1 = {(name, level): results[name][level]["top1_accuracy"] for name in results for level in levels}
    for name, label in rows:
        few = [top1[f"{name}-few", level] for level in levels]
        lines.append(f"| {label} | " + " | ".join(f"{top1[name, level]['mean']:.3f}" for level in levels) + " | "
                     + " | ".join(f"{m['mean']:.3f} ± {m['std']:.3f}" for m in few) + " |")
    lines += ["", "Margins of S3T in top-1, track / clip (all labels; and with few labels, mean ± std over the same "
              "3 draws, paired):", ""]
    for name, label in rows[1:]:
        full = [top1["s3t", level]["mean"] - top1[name, level]["mean"] for level in levels]
        few = [mean_std([a - b for a, b in zip(top1["s3t-few", level]["values"], top1[f"{name}-few", level]["values"])])
               for level in levels]
        lines.append(f"- over {label}: {full[0]:+.3f} / {full[1]:+.3f} with all labels; "
                     + " / ".join(f"{m['mean']:+.3f} ± {m['std']:.3f}" for m in few)
                     + f" with {FEW_LABELS:.0%} of them")
    random_top1, s3t_top1 = top1["random", "track"]["mean"], top1["s3t", "track"]["mean"]
    if random_top1 >= SATURATED and s3t_top1 <= random_top1:
        lines += ["", f"Random Init alone reaches {random_top1:.3f} on tracks, and S3T does not beat it: at this size "
                  "the corpus shows the pipeline at work, not what pre-training adds. On real music it adds: see the "
                  "representation study in benchmarks/RESULTS.md."]
    lines += ["", "Protocol: " + "; ".join(f"{k}: {v}" for k, v in results["s3t"]["protocol"].items()), "",
              "## Pre-training loss", "", "![loss](loss.png)", "",
              "## Test confusion matrices", "", "S3T: ![s3t](probe-s3t/confusion_matrix.png)", "",
              "Random Init: ![random](probe-random/confusion_matrix.png)", "",
              "## Test embeddings (t-SNE)", "", "S3T: ![s3t](probe-s3t/embedding_map.png)", "",
              "Random Init: ![random](probe-random/embedding_map.png)", "",
              "## Wall time", "", "| stage | seconds |", "| --- | --- |"]
    lines += [f"| {stage} | {seconds:.0f} |" for stage, seconds in times.items()]
    return "\n".join(lines) + "\n"
