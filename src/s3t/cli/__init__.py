"""`s3t` command line: argparse subcommands (`s3t.cli.parser`), each one call into the library
(`s3t.cli.commands`); bad input ends in one line naming the command and the problem."""

from __future__ import annotations

import logging
import sys

from s3t.audio.decode import AudioError
from s3t.cli.parser import build_parser
from s3t.data.cache import CacheError
from s3t.data.preparation import InputError
from s3t.io.checkpoint import CheckpointError
from s3t.io.files import StorageError
from s3t.training.engine import TrainingError

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    # what bad input or a full disk raises (OSError: an output folder we may not write to, a vanished
    # input, …): the message is enough; `s3t -v …` shows where it came from
    except (InputError, CacheError, AudioError, CheckpointError, TrainingError, StorageError, ValueError, OSError) as e:
        logging.getLogger("s3t").debug("traceback", exc_info=True)
        print(f"s3t {args.command}: error: {e}", file=sys.stderr)
        return 2
