"""`s3t` command line: thin argparse subcommands over the library functions."""

from __future__ import annotations

import argparse
import logging
import sys

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
    p.add_argument("--device", default="cpu", help="where the CQT runs: cpu, cuda, cuda:1 …")
    p.add_argument("--shard-mb", type=float, default=128.0, help="target shard size in MiB")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_prepare)


def _run_prepare(args: argparse.Namespace) -> int:
    from s3t.prepare import prepare

    summary = prepare(args.input, args.out, workers=args.workers, time_compression=args.time_compression,
                      device=args.device, shard_mb=args.shard_mb, progress=not args.no_progress)
    print(summary)
    return 0 if summary.written or summary.already_done else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s3t", description="Self-supervised music representations "
                                     "(Swin Transformer + MoCo v2 on constant-Q spectrograms).")
    parser.add_argument("--version", action="version", version=f"s3t {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_prepare(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    from s3t.audio import AudioError
    from s3t.cache import CacheError
    from s3t.prepare import InputError

    try:
        return args.func(args)
    except (InputError, CacheError, AudioError, ValueError) as e:
        print(f"s3t {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
