"""The `s3t` command line's arguments: one subparser per command, each bound to its `commands.run_*`."""

from __future__ import annotations

import argparse

from s3t.cli import commands
from s3t.data.datasets import LOADERS
from s3t.devices import resolve_device
from s3t.version import __version__
from s3t.workflows.paper_grid import BUDGETS


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return value


def _device(text: str) -> str:
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
    p.set_defaults(func=commands.run_prepare)


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
    p.set_defaults(func=commands.run_pretrain)


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
    p.set_defaults(func=commands.run_pretrain, split=None)  # `s3t pretrain --config clmr` under its own name


def _add_encoder_args(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group()
    which.add_argument("--checkpoint", help="a training checkpoint (its encoder is used) or a folder `s3t export` "
                       "wrote; neither this nor --encoder: the starter weights the package ships")
    which.add_argument("--encoder", choices=["random", "cqt-stats"],
                       help="random: the Random Init baseline, same pipeline (architecture from --config/--set "
                       "model.*); cqt-stats: per-bin mean and std of the log-CQT, the reference with no encoder")
    p.add_argument("--config", action="append", default=[], metavar="FILE", help="YAML config (model, probe)")
    _add_overrides(p)
    p.add_argument("--time-compression", type=_positive_int, default=1, metavar="C",
                   help="with --encoder random: the cache's time compression (a checkpoint knows its own)")
    p.add_argument("--device", type=_device, default="cpu", help="where the encoder runs: cpu, cuda, cuda:1 …")


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
    p.add_argument("--frames", action="store_true", help="one feature per hop (46.4 ms) of each track, its "
                   "timestamp beside it (.npz: timestamps_I, features_I per track I), not one per track")
    p.add_argument("--batch-size", type=_positive_int, default=32)
    p.add_argument("--save-every", type=_positive_int, default=256, metavar="N",
                   help="keep finished work every N tracks (what a killed run does not redo)")
    p.add_argument("--workers", type=_non_negative_int, default=2, help="decoder processes for preparing audio")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=commands.run_embed)


def _add_dataset_args(p: argparse.ArgumentParser) -> None:
    """A labelled dataset, where its audio is cached, and how it is cut: linear-eval and supervised."""
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
    p.add_argument("--probe", choices=("linear", "mlp"), default=None, help="the paper's linear layer, or MARBLE's "
                   "MLP (512 hidden, dropout 0.2); default: the config's probe.kind (linear)")
    p.set_defaults(func=commands.run_linear_eval)


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
    p.set_defaults(func=commands.run_supervised)


def _add_reproduce(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=commands.run_reproduce)


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="a checkpoint's encoder as config.json + model.safetensors + model card",
                       description="Write the encoder of CHECKPOINT to the folder OUT: config.json, model.safetensors "
                                   "(weights only, no pickle) and a README.md model card. `s3t.from_pretrained(OUT)` "
                                   "and `--checkpoint OUT` load it.")
    p.add_argument("checkpoint", help="a training checkpoint (last.pt, best.pt …)")
    p.add_argument("out", help="output folder")
    p.add_argument("--licence", default="unspecified", help="the licence field of the model card")
    p.add_argument("--onnx", action="store_true", help="also OUT/encoder.onnx: log-CQT (batch, 84, frames) in dB -> "
                   "features (batch, D); the CQT stays in Python")
    p.set_defaults(func=commands.run_export)


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
    p.set_defaults(func=commands.run_predict)


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
    p.set_defaults(func=commands.run_demo)


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
