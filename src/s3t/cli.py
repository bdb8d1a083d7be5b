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


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text}")
    return value


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
    p.add_argument("--device", default="cpu", help="where the CQT runs: cpu, cuda, cuda:1 …")
    p.add_argument("--shard-mb", type=float, default=128.0, help="target shard size in MiB")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_prepare)


def _run_prepare(args: argparse.Namespace) -> int:
    from s3t.prepare import prepare

    summary = prepare(args.input, args.out, workers=args.workers, time_compression=args.time_compression,
                      clip_seconds=args.clip_seconds, device=args.device, shard_mb=args.shard_mb,
                      progress=not args.no_progress)
    print(summary)
    return 0 if summary.written or summary.already_done else 1


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="MoCo v2 pre-training on a prepared cache",
                       description="Pre-train the encoder on the cache DATA (from `s3t prepare`), writing "
                                   "config.yaml, log.csv, loss.png and checkpoints to OUT. Run under "
                                   "`torchrun --nproc_per_node N` for several processes.")
    p.add_argument("--data", required=True, help="cache folder")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--config", action="append", default=[], metavar="FILE",
                   help="YAML config, layered over the defaults (repeatable; e.g. configs/cpu-small.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="overrides",
                   help="override one value, e.g. --set optim.epochs=10 (repeatable, applied last)")
    p.add_argument("--split", help="use only the tracks whose manifest 'split' column has this value")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt if it exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_pretrain)


def _run_pretrain(args: argparse.Namespace) -> int:
    from s3t.checkpoint import load_checkpoint
    from s3t.config import load_config
    from s3t.train import pretrain

    last = Path(args.out) / "last.pt"
    base = load_checkpoint(last)["config"] if args.resume and last.exists() else None
    cfg = load_config(args.config, args.overrides, base=base)
    path = pretrain(cfg, args.data, args.out, resume=args.resume, split=args.split, progress=not args.no_progress)
    print(f"checkpoint: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s3t", description="Self-supervised music representations "
                                     "(Swin Transformer + MoCo v2 on constant-Q spectrograms).")
    parser.add_argument("--version", action="version", version=f"s3t {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_prepare(sub)
    _add_pretrain(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    from s3t.audio import AudioError
    from s3t.cache import CacheError
    from s3t.checkpoint import CheckpointError
    from s3t.prepare import InputError
    from s3t.train import TrainingError

    try:
        return args.func(args)
    except (InputError, CacheError, AudioError, CheckpointError, TrainingError, ValueError) as e:
        print(f"s3t {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
