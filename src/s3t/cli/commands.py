"""What each `s3t` command does: one call into the library with the parsed arguments, then what it prints."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from s3t.data.datasets import load_dataset
from s3t.data.preparation import prepare
from s3t.eval.linear_eval import linear_eval, summary_markdown
from s3t.eval.predict import format_predictions, predict
from s3t.inference.features import embed_to_file
from s3t.inference.load import STARTER, EncoderChoice, load_encoder
from s3t.inference.onnx_export import ONNX_NAME, export_onnx
from s3t.io.export_folder import export
from s3t.training.engine import run_config
from s3t.workflows import demo
from s3t.workflows.pretrain import pretrain
from s3t.workflows.reproduce import Runner
from s3t.workflows.supervised import supervised_then_probe


def run_prepare(args: argparse.Namespace) -> int:
    summary = prepare(args.input, args.out, workers=args.workers, time_compression=args.time_compression,
                      clip_seconds=args.clip_seconds, device=args.device, shard_mb=args.shard_mb,
                      progress=not args.no_progress, part=args.part)
    print(summary)
    return 0 if summary.written or summary.already_done else 1


def run_pretrain(args: argparse.Namespace) -> int:
    cfg = run_config(args.out, args.config, args.overrides, resume=args.resume)
    path = pretrain(cfg, args.data, args.out, resume=args.resume, split=args.split, progress=not args.no_progress,
                    monitor=getattr(args, "monitor", None))
    print(f"checkpoint: {path}")
    return 0


def encoder_choice(args: argparse.Namespace) -> EncoderChoice:
    checkpoint = args.checkpoint or (None if args.encoder else str(STARTER))  # neither: the starter weights
    return EncoderChoice(checkpoint, args.encoder, tuple(args.config), tuple(args.overrides),
                         args.time_compression, args.device)


def run_embed(args: argparse.Namespace) -> int:
    path, summary = embed_to_file(args.input, encoder_choice(args).load(), args.out, windows=args.windows,
                                  batch_size=args.batch_size, save_every=args.save_every, workers=args.workers,
                                  device=args.device, progress=not args.no_progress, frames=args.frames)
    if summary is not None:
        print(summary)
    print(f"features: {path}")
    return 0


def run_linear_eval(args: argparse.Namespace) -> int:
    dataset = load_dataset(args.dataset, args.root, seed=args.split_seed)
    choice = encoder_choice(args)
    probe = choice.config().probe
    probe = replace(probe, kind=args.probe) if args.probe else probe
    metrics = linear_eval(dataset, choice.load(), args.out, probe, label_fraction=args.label_fraction,
                          seeds=args.seeds, cache_dir=args.cache, clip_seconds=args.clip_seconds, windows=args.windows,
                          workers=args.workers, progress=not args.no_progress)
    print(summary_markdown(metrics))
    print(f"written to {args.out}")
    return 0


def run_supervised(args: argparse.Namespace) -> int:
    dataset = load_dataset(args.dataset, args.root, seed=args.split_seed)
    own, probed = supervised_then_probe(dataset, run_config(args.out, args.config, args.overrides, resume=args.resume),
                                        args.out, label_fraction=args.label_fraction, seed=args.seed,
                                        probe_seeds=args.probe_seeds, cache_dir=args.cache,
                                        clip_seconds=args.clip_seconds, workers=args.workers, resume=args.resume,
                                        progress=not args.no_progress)
    print(f"end to end (epoch {own['best_epoch']}): " +
          ", ".join(f"{name} {own['track'][name]:.4f}" for name in dataset.headline))
    print(summary_markdown(probed))
    print(f"written to {args.out}")
    return 0


def run_reproduce(args: argparse.Namespace) -> int:
    tables = Runner(args.corpus, args.dataset, args.root, args.budget, args.out, workers=args.workers,
                    clip_seconds=args.clip_seconds).run()
    print(tables.read_text())
    print(f"written to {tables}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    out = export(args.checkpoint, args.out, args.licence)
    if args.onnx:
        print(f"ONNX graph: {export_onnx(load_encoder(out), out / ONNX_NAME)}")
    print(f"exported to {out}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    results = predict(args.files, load_encoder(args.checkpoint, args.device), args.probe, top_k=args.top)
    print(json.dumps(results, indent=2) if args.json else format_predictions(results))
    return 0 if any("top" in r for r in results) else 1


def run_demo(args: argparse.Namespace) -> int:
    report = demo.run_demo(args.out, minutes=args.minutes, tracks_per_style=args.tracks_per_style,
                           workers=args.workers, configs=tuple(args.config) or demo.CONFIGS,
                           overrides=tuple(args.overrides), progress=not args.no_progress)
    print(report.read_text())
    print(f"report: {report.resolve()}")
    return 0
