"""`s3t` command line: thin argparse subcommands over the library functions."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from s3t import __version__


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return value


def _device(text: str) -> str:
    from s3t.devices import resolve_device

    try:
        return str(resolve_device(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("device: ")) from None


def _part(text: str) -> tuple[int, int]:
    k, sep, n = text.partition("/")
    if not (sep and k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise argparse.ArgumentTypeError(f"expected K/N with 1 <= K <= N, e.g. 2/4; got {text}")
    return int(k), int(n)


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text}")
    return value


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="extend", nargs="+", default=[], metavar="SECTION.KEY=VALUE", dest="overrides",
                   help="override config values, applied last, e.g. --set optim.epochs=10 probe.epochs=100")


def _add_prepare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="decode audio once into the CQT cache",
                       description="Write the log-CQT of every track of INPUT (a folder, scanned recursively, "
                                   "or a CSV manifest with a 'path' column) into the cache folder OUT. "
                                   "Resumable: run it again to continue.")
    p.add_argument("input", help="folder of audio files or CSV manifest")
    p.add_argument("--out", required=True, help="cache folder (created if missing)")
    p.add_argument("--workers", type=_non_negative_int, default=2, help="decoder processes (0: in this process)")
    p.add_argument("--time-compression", type=_positive_int, default=1, metavar="C",
                   help="average-pool C CQT frames into one (the paper used 100)")
    p.add_argument("--clip-seconds", type=float, default=0.0, metavar="S",
                   help="cut each track into clips of S seconds after analysis (0: whole tracks)")
    p.add_argument("--device", type=_device, default="cpu", help="where the CQT runs: cpu, cuda, cuda:1 …")
    p.add_argument("--shard-mb", type=float, default=128.0, help="target shard size in MiB")
    p.add_argument("--part", type=_part, default=(1, 1), metavar="K/N",
                   help="prepare only the K-th of N interleaved shares of the sources (one per machine); "
                   "`pretrain --data` reads the N caches as one corpus")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_prepare)


def _run_prepare(args: argparse.Namespace) -> int:
    from s3t.prepare import prepare

    summary = prepare(args.input, args.out, workers=args.workers, time_compression=args.time_compression,
                      clip_seconds=args.clip_seconds, device=args.device, shard_mb=args.shard_mb,
                      progress=not args.no_progress, part=args.part)
    print(summary)
    return 0 if summary.written or summary.already_done else 1


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="MoCo v2 pre-training on a prepared cache",
                       description="Pre-train the encoder on the cache DATA (from `s3t prepare`), writing "
                                   "config.yaml, log.csv, loss.png and checkpoints to OUT. Run under "
                                   "`torchrun --nproc_per_node N` for several processes.")
    p.add_argument("--data", required=True, nargs="+", metavar="CACHE",
                   help="cache folder; several are read as one corpus (e.g. the parts of `prepare --part`)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--config", action="append", default=[], metavar="FILE",
                   help="YAML config or preset name (paper, cpu-small, tiny), layered over the defaults (repeatable)")
    _add_overrides(p)
    p.add_argument("--split", help="use only the tracks whose manifest 'split' column has this value")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt if it exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--monitor", nargs=2, metavar=("DATASET", "ROOT"),
                   help="a labeled single-label set (as for linear-eval) whose validation split is read with a "
                        "k-NN and a linear probe every train.monitor_every epochs, into log.csv and loss.png")
    p.set_defaults(func=_run_pretrain)


def _run_pretrain(args: argparse.Namespace) -> int:
    from s3t.engine import run_config
    from s3t.train import pretrain

    cfg = run_config(args.out, args.config, args.overrides, resume=args.resume)
    monitor = None
    if getattr(args, "monitor", None):
        from s3t.cache import open_corpus
        from s3t.monitor import build_monitor

        meta = open_corpus(args.data).meta
        monitor = build_monitor(*args.monitor, Path(args.out) / "monitor", int(meta.get("time_compression", 1)),
                                float(meta.get("clip_seconds", 0.0)), progress=not args.no_progress)
    path = pretrain(cfg, args.data, args.out, resume=args.resume, split=args.split, progress=not args.no_progress,
                    monitor=monitor)
    print(f"checkpoint: {path}")
    return 0


def _add_clmr(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("clmr", help="the CLMR baseline: SampleCNN on raw audio with NT-Xent",
                       description="Pre-train CLMR (SampleCNN, SimCLR's NT-Xent, CLMR's waveform augmentations) on "
                                   "the audio behind the cache DATA (its source files are decoded), writing a run "
                                   "folder like `s3t pretrain` does (it is `s3t pretrain --config clmr`); probe it "
                                   "with `s3t linear-eval --checkpoint`.")
    p.add_argument("--data", required=True, help="cache folder (from `s3t prepare`): its sources are read")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--config", action="append", default=["clmr"], metavar="FILE",
                   help="YAML config or preset layered over the `clmr` preset (repeatable)")
    _add_overrides(p)
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt if it exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_pretrain, split=None)  # `s3t pretrain --config clmr` under its own name


def _add_encoder_args(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", help="a training checkpoint (its encoder is used) or a folder `s3t export` wrote")
    which.add_argument("--encoder", choices=["random", "cqt-stats"],
                       help="random: the Random Init baseline, same pipeline (architecture from --config/--set "
                       "model.*); cqt-stats: per-bin mean and std of the log-CQT, the reference with no encoder")
    p.add_argument("--config", action="append", default=[], metavar="FILE", help="YAML config (model, probe)")
    _add_overrides(p)
    p.add_argument("--time-compression", type=_positive_int, default=1, metavar="C",
                   help="with --encoder random: the cache's time compression (a checkpoint knows its own)")
    p.add_argument("--device", type=_device, default="cpu", help="where the encoder runs: cpu, cuda, cuda:1 …")


def _encoder(args: argparse.Namespace):
    from s3t.config import load_config
    from s3t.encoder import CqtStatsEncoder, load_encoder, random_encoder

    if args.checkpoint:  # its model comes with it: --set model.* may only change how it is read out
        return load_encoder(args.checkpoint, args.device, [o for o in args.overrides if o.startswith("model.")])
    if args.encoder == "cqt-stats":
        return CqtStatsEncoder(args.time_compression)
    cfg = load_config(args.config, args.overrides)
    return random_encoder(cfg.model, seed=cfg.train.seed, time_compression=args.time_compression, device=args.device)


def _add_embed(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="frozen encoder features for a folder, manifest or cache",
                       description="Write one feature vector per track of INPUT (a folder of audio, a CSV "
                                   "manifest or a prepared cache) to FEATURES (.npz: track_ids, features). "
                                   "Audio is prepared into FEATURES.cache/ first. Resumable.")
    p.add_argument("input", help="folder, CSV manifest or cache folder")
    p.add_argument("--out", required=True, help="features file (.npz)")
    _add_encoder_args(p)
    p.add_argument("--windows", action="store_true", default=None, help="mean over half-overlapping windows, not "
                   "the whole clip resized (default: the encoder config's model.embedding)")
    p.add_argument("--batch-size", type=_positive_int, default=32)
    p.add_argument("--save-every", type=_positive_int, default=256, metavar="N",
                   help="keep finished work every N tracks (what a killed run does not redo)")
    p.add_argument("--workers", type=_non_negative_int, default=2, help="decoder processes for preparing audio")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_embed)


def _run_embed(args: argparse.Namespace) -> int:
    from s3t.cache import open_cache
    from s3t.encoder import embed_cache_to_file
    from s3t.prepare import prepare

    encoder = _encoder(args)
    source, out = Path(args.input), Path(args.out)
    if not (source / "index.sqlite").exists():
        cache_dir = out.with_name(out.name + ".cache")
        print(prepare(source, cache_dir, workers=args.workers, time_compression=encoder.time_compression,
                      device=args.device, progress=not args.no_progress))
        source = cache_dir
    path = embed_cache_to_file(open_cache(source), encoder, out, windows=args.windows, batch_size=args.batch_size,
                               chunk=args.save_every, progress=not args.no_progress)
    print(f"features: {path}")
    return 0


def _add_dataset_args(p: argparse.ArgumentParser) -> None:
    """A labelled dataset, where its audio is cached, and how it is cut: linear-eval and supervised."""
    from s3t.datasets import LOADERS

    p.add_argument("--dataset", required=True, choices=sorted(LOADERS), help="layout of ROOT")
    p.add_argument("--root", required=True, help="dataset folder as downloaded (csv: the manifest file)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--label-fraction", type=float, default=1.0, help="share of the training tracks with labels "
                   "(e.g. 0.01, 0.1, 1.0), stratified, drawn with each seed")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the split drawn for folder/csv data without one")
    p.add_argument("--cache", help="cache folder for the dataset's CQTs (default OUT/cache; share it across runs)")
    p.add_argument("--clip-seconds", type=float, default=0.0, help="cut tracks into clips of S seconds; metrics "
                   "per clip and per track")
    p.add_argument("--workers", type=_non_negative_int, default=2, help="decoder processes for preparing audio")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_linear_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("linear-eval", help="linear probe of an encoder on a labeled dataset",
                       description="Prepare and embed the dataset once (cached in OUT), train linear probes with "
                                   "the paper's recipe, pick the epoch on validation and write test metrics "
                                   "(metrics.json, summary.md, plots, probe.pt) to OUT.")
    _add_dataset_args(p)
    _add_encoder_args(p)
    p.add_argument("--seeds", type=_positive_int, default=1, help="probes with seeds 0..N-1; mean ± std reported")
    p.add_argument("--windows", action="store_true", default=None, help="embed the mean over sliding windows "
                   "(default: the encoder config's model.embedding)")
    p.set_defaults(func=_run_linear_eval)


def _run_linear_eval(args: argparse.Namespace) -> int:
    from s3t.config import load_config
    from s3t.datasets import load_dataset
    from s3t.evaluate import linear_eval, summary_markdown
    from s3t.export import saved_config

    dataset = load_dataset(args.dataset, args.root, seed=args.split_seed)
    encoder = _encoder(args)
    # a checkpoint's own probe settings come first: a recipe carries them (then --config, --set)
    base = saved_config(args.checkpoint) if args.checkpoint else None
    metrics = linear_eval(dataset, encoder, args.out, load_config(args.config, args.overrides, base=base).probe,
                          label_fraction=args.label_fraction, seeds=args.seeds, cache_dir=args.cache,
                          clip_seconds=args.clip_seconds, windows=args.windows, workers=args.workers,
                          progress=not args.no_progress)
    print(summary_markdown(metrics))
    print(f"written to {args.out}")
    return 0


def _add_supervised(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("supervised", help="the Supervised baseline: train the encoder on the labels, then probe it",
                       description="Train the encoder of CONFIG end to end on the dataset's labels (one crop per "
                                   "item, the same augmentations, cross-entropy or BCE for tags; epoch picked on "
                                   "validation), report its own test score, then linear-probe its frozen features "
                                   "like any other encoder (OUT/linear-eval).")
    _add_dataset_args(p)
    p.add_argument("--config", action="append", default=[], metavar="FILE",
                   help="YAML config or preset name: model, optim (epochs, lr), augment, probe (repeatable)")
    _add_overrides(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, crops and label draw")
    p.add_argument("--probe-seeds", type=_positive_int, default=1, help="linear probes on the frozen features")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt if it exists")
    p.set_defaults(func=_run_supervised)


def _run_supervised(args: argparse.Namespace) -> int:
    from s3t.datasets import load_dataset
    from s3t.encoder import load_encoder
    from s3t.evaluate import linear_eval, summary_markdown
    from s3t.engine import run_config
    from s3t.supervised import train_supervised

    cfg = run_config(args.out, args.config, args.overrides, resume=args.resume)
    dataset = load_dataset(args.dataset, args.root, seed=args.split_seed)
    out = Path(args.out)
    cache = args.cache or out / "cache"
    own = train_supervised(dataset, cfg, out, label_fraction=args.label_fraction, seed=args.seed, cache_dir=cache,
                           clip_seconds=args.clip_seconds, workers=args.workers, resume=args.resume,
                           progress=not args.no_progress)
    level = "track"
    print(f"end to end (epoch {own['best_epoch']}): " +
          ", ".join(f"{name} {own[level][name]:.4f}" for name in dataset.headline))
    metrics = linear_eval(dataset, load_encoder(out / "best.pt"), out / "linear-eval", cfg.probe,
                          label_fraction=args.label_fraction, seeds=args.probe_seeds, cache_dir=cache,
                          clip_seconds=args.clip_seconds, workers=args.workers, progress=not args.no_progress)
    print(summary_markdown(metrics))
    print(f"written to {out}")
    return 0


def _add_reproduce(sub: argparse._SubParsersAction) -> None:
    from s3t.datasets import LOADERS
    from s3t.reproduce import BUDGETS

    p = sub.add_parser("reproduce", help="the paper's Tables 1-4 on your corpus, dataset and budget",
                       description="Pre-train (S3T with each backbone and pre-processor), train the Supervised "
                                   "baseline, probe everything and Random Init at 1/10/100 %% of the labels, each "
                                   "step an `s3t` process recorded in OUT/steps.json; OUT/tables.md holds the "
                                   "paper's tables with our numbers beside them. Run it again to resume.")
    p.add_argument("--corpus", required=True, help="prepared cache of the unlabelled pre-training corpus")
    p.add_argument("--dataset", required=True, choices=sorted(LOADERS), help="layout of ROOT")
    p.add_argument("--root", required=True, help="labelled dataset folder (csv: the manifest file)")
    p.add_argument("--budget", default="small", choices=sorted(BUDGETS),
                   help="small: CPU-sized models and epochs; paper: the paper's; tiny: seconds (tests)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--clip-seconds", type=float, default=0.0, help="probe (and train Supervised) on clips of S "
                   "seconds; scores per track from the mean of its clips")
    p.add_argument("--workers", type=_non_negative_int, default=2, help="decoder processes for preparing audio")
    p.set_defaults(func=_run_reproduce)


def _run_reproduce(args: argparse.Namespace) -> int:
    from s3t.reproduce import Runner

    tables = Runner(args.corpus, args.dataset, args.root, args.budget, args.out, workers=args.workers,
                    clip_seconds=args.clip_seconds).run()
    print(tables.read_text())
    print(f"written to {tables}")
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="a checkpoint's encoder as config.json + model.safetensors + model card",
                       description="Write the encoder of CHECKPOINT to the folder OUT: config.json, model.safetensors "
                                   "(weights only, no pickle) and a README.md model card. `s3t.from_pretrained(OUT)` "
                                   "and `--checkpoint OUT` load it.")
    p.add_argument("checkpoint", help="a training checkpoint (last.pt, best.pt …)")
    p.add_argument("out", help="output folder")
    p.add_argument("--licence", default="unspecified", help="the licence field of the model card")
    p.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from s3t.export import export

    print(f"exported to {export(args.checkpoint, args.out, args.licence)}")
    return 0


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="genres or tags of audio files, with a probe from linear-eval",
                       description="Score FILES with the probe saved by `s3t linear-eval` in PROBE_DIR on top "
                                   "of the encoder of CKPT.")
    p.add_argument("files", nargs="+", help="audio files")
    p.add_argument("--checkpoint", required=True, help="the checkpoint the probe was trained on")
    p.add_argument("--probe", required=True, help="a linear-eval output folder (holds probe.pt)")
    p.add_argument("--top", type=_positive_int, default=3, help="how many labels per file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--device", type=_device, default="cpu", help="where the encoder runs: cpu, cuda, cuda:1 …")
    p.set_defaults(func=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    import json

    from s3t.encoder import load_encoder
    from s3t.evaluate import format_predictions, predict

    results = predict(args.files, load_encoder(args.checkpoint, args.device), args.probe, top_k=args.top)
    print(json.dumps(results, indent=2) if args.json else format_predictions(results))
    return 0 if any("top" in r for r in results) else 1


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole method on a built-in synthetic corpus, ending in a report",
                       description="Synthesise a labeled music corpus, prepare it, pre-train the CPU preset "
                                   "(100 epochs, or about M minutes), probe the pre-trained and a random-init "
                                   "encoder and write a report. Resumable: run it again to continue.")
    p.add_argument("--out", default="demo", help="output folder (default: demo)")
    p.add_argument("--minutes", type=float, help="pre-train for about this many minutes instead of the preset's "
                   "epochs (planned from a measured step: the result then moves with the machine's load)")
    p.add_argument("--tracks-per-style", type=_positive_int, default=40)
    p.add_argument("--workers", type=_non_negative_int, default=2)
    p.add_argument("--config", action="append", default=[], metavar="FILE",
                   help="preset or YAML file for pre-training (repeatable; default: cpu-small, then demo)")
    _add_overrides(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from s3t.demo import CONFIGS, run_demo

    report = run_demo(args.out, minutes=args.minutes, tracks_per_style=args.tracks_per_style, workers=args.workers,
                      configs=tuple(args.config) or CONFIGS, overrides=tuple(args.overrides),
                      progress=not args.no_progress)
    print(report.read_text())
    print(f"report: {report.resolve()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s3t", description="Self-supervised music representations "
                                     "(Swin Transformer + MoCo v2 on constant-Q spectrograms).")
    parser.add_argument("--version", action="version", version=f"s3t {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_prepare(sub)
    _add_pretrain(sub)
    _add_clmr(sub)
    _add_embed(sub)
    _add_export(sub)
    _add_linear_eval(sub)
    _add_supervised(sub)
    _add_reproduce(sub)
    _add_predict(sub)
    _add_demo(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    from s3t.audio import AudioError
    from s3t.cache import CacheError
    from s3t.checkpoint import CheckpointError
    from s3t.files import StorageError
    from s3t.prepare import InputError
    from s3t.engine import TrainingError

    try:
        return args.func(args)
    except (InputError, CacheError, AudioError, CheckpointError, TrainingError, StorageError, ValueError) as e:
        logging.getLogger("s3t").debug("traceback", exc_info=True)  # `s3t -v …` shows where it came from
        print(f"s3t {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an output folder we may not write to, a vanished input, …: no traceback needed
        logging.getLogger("s3t").debug("traceback", exc_info=True)
        print(f"s3t {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
