"""`s3t linear-eval`: a labeled dataset -> cache -> frozen features (once) -> linear probes -> metrics,
plots and a markdown summary; and `predict` with a saved probe."""

from __future__ import annotations

import csv
import json
import logging
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
from s3t import plots
from s3t.audio import HOP_LENGTH, AudioError, load_audio
from s3t.cache import Cache, open_cache
from s3t.checkpoint import save_checkpoint
from s3t.config import ProbeConfig
from s3t.datasets import LabeledSet, with_validation
from s3t.encoder import Encoder, embed, embed_cache_to_file, read_features
from s3t.files import write_text
from s3t.prepare import PrepareSummary, prepare
from s3t.probe import Probe, multilabel_metrics, single_label_metrics, train_probe

log = logging.getLogger(__name__)

HEADLINE = {False: ("top1_accuracy", "top5_accuracy"), True: ("roc_auc_macro", "pr_auc_macro")}


def default_batch_size(dataset: str) -> int:
    """The paper's probe batch: 64 on GTZAN, 256 on FMA and MTAT; 64 on your own (small) data."""
    return 256 if dataset.startswith(("fma", "mtat")) else 64


def write_manifest(dataset: LabeledSet, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split"])
        writer.writerows([item.path, ";".join(item.labels), item.split] for item in dataset.items)


def prepare_dataset(dataset: LabeledSet, out: Path, cache_dir: str | Path | None, time_compression: int,
                    clip_seconds: float, workers: int, progress: bool) -> tuple[LabeledSet, Cache, PrepareSummary]:
    """The dataset with a validation split, its manifest in `out`, and its audio prepared into
    `cache_dir` (default `out`/cache), damaged shards rebuilt; returns them and prepare's summary."""
    dataset = with_validation(dataset)
    cache_dir = Path(cache_dir) if cache_dir else out / "cache"
    write_manifest(dataset, out / "manifest.csv")
    summary = prepare(out / "manifest.csv", cache_dir, workers=workers, time_compression=time_compression,
                      clip_seconds=clip_seconds, progress=progress)
    cache = open_cache(cache_dir)
    if cache.meta.get("clip_seconds", 0.0) != clip_seconds:
        raise ValueError(f"{cache_dir} holds clips of {cache.meta.get('clip_seconds')} s, not {clip_seconds} s: "
                         "give another --cache folder")
    return dataset, cache, summary


def split_rows(dataset: LabeledSet, cache: Cache, clip_seconds: float) -> dict[str, list[tuple[str, str]]]:
    """(cache id, track path) of every cached item (or clip) of each split; raises when a split is empty."""
    by_path = {item.path: item for item in dataset.items}
    track_of = cache.column("track") if clip_seconds else cache.track_ids
    entries = [(cid, track) for cid, track in zip(cache.track_ids, track_of) if track in by_path]
    rows = {s: [(cid, track) for cid, track in entries if by_path[track].split == s] for s in ("train", "valid", "test")}
    for s, r in rows.items():
        if not r:
            raise ValueError(f"{dataset.name}: no readable {s} items (of {len(dataset.split(s))} listed); "
                             "see the skipped files above")
    return rows


def targets_of(dataset: LabeledSet, items: list) -> np.ndarray:
    """Class ids (N,) or multi-hot tags (N, C) of items."""
    index = {c: i for i, c in enumerate(dataset.classes)}
    if not dataset.multilabel:
        return np.array([index[item.labels[0]] for item in items], dtype=np.int64)
    targets = np.zeros((len(items), len(dataset.classes)), dtype=np.float32)
    for n, item in enumerate(items):
        targets[n, [index[t] for t in item.labels if t in index]] = 1.0
    return targets


def label_subset(dataset: LabeledSet, train_tracks: list[str], fraction: float, seed: int) -> set[str]:
    """A `fraction` of the training tracks drawn with `seed`, stratified by label (at least one
    track per class for single-label data), so 1 % of GTZAN still sees every genre."""
    if fraction >= 1.0:
        return set(train_tracks)
    labels = {item.path: ";".join(item.labels) for item in dataset.items}
    rng = np.random.default_rng(seed)
    if dataset.multilabel:
        n = max(1, round(fraction * len(train_tracks)))
        return set(rng.choice(sorted(train_tracks), size=n, replace=False).tolist())
    chosen: set[str] = set()
    for label in sorted({labels[t] for t in train_tracks}):
        members = sorted(t for t in train_tracks if labels[t] == label)
        n = max(1, round(fraction * len(members)))
        chosen |= set(rng.choice(members, size=n, replace=False).tolist())
    return chosen


def linear_eval(dataset: LabeledSet, encoder: Encoder, out: str | Path, cfg: ProbeConfig | None = None,
                label_fraction: float = 1.0, seeds: int = 1, cache_dir: str | Path | None = None,
                clip_seconds: float = 0.0, windows: bool | None = None, workers: int = 2, progress: bool = True) -> dict:
    """Probe `encoder` on `dataset`: prepare its audio (cached), embed it once (cached per encoder),
    train `seeds` linear probes on a `label_fraction` of the training tracks, pick each probe's epoch
    on validation and write test metrics to `out`/metrics.json, summary.md, plots and probe.pt.

    With `clip_seconds`, tracks are cut into clips: probes train on clips, and test metrics are
    given per clip and per track (mean of its clips' scores). Returns the metrics dict.
    """
    cfg = cfg or ProbeConfig()
    if not 0.0 < label_fraction <= 1.0:
        raise ValueError(f"label_fraction must be in (0, 1], got {label_fraction}")
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    out = Path(out)
    windows = encoder.uses_windows(windows)
    dataset, cache, summary = prepare_dataset(dataset, out, cache_dir, encoder.time_compression, clip_seconds,
                                              workers, progress)
    feature_file = out / "features" / f"{encoder.fingerprint()}{'-windows' if windows else ''}.npz"
    feature_file.parent.mkdir(parents=True, exist_ok=True)
    stored = read_features(feature_file) if feature_file.exists() else None
    if stored is None or set(map(str, stored["track_ids"])) != set(cache.track_ids):
        embed_cache_to_file(cache, encoder, feature_file, windows=windows, progress=progress)
        stored = read_features(feature_file)
    features = {str(t): v for t, v in zip(stored["track_ids"], stored["features"])}

    by_path = {item.path: item for item in dataset.items}
    rows = split_rows(dataset, cache, clip_seconds)

    def arrays(part):
        x = np.stack([features[cid] for cid, _ in part])
        return x, targets_of(dataset, [by_path[track] for _, track in part])

    batch = cfg.batch_size or default_batch_size(dataset.name)
    x_valid, y_valid = arrays(rows["valid"])
    x_test, y_test = arrays(rows["test"])
    runs = []
    for seed in range(seeds):
        keep = label_subset(dataset, sorted({t for _, t in rows["train"]}), label_fraction, seed)
        x_train, y_train = arrays([r for r in rows["train"] if r[1] in keep])
        probe = train_probe(x_train, y_train, x_valid, y_valid, len(dataset.classes), dataset.multilabel, cfg,
                            batch, seed)
        runs.append((probe, score_test_split(dataset, probe, x_test, y_test, rows["test"], clip_seconds > 0),
                     len(keep)))

    metrics = _report(dataset, encoder, cfg, runs, label_fraction, batch, clip_seconds, windows, summary, rows)
    _write_outputs(out, dataset, encoder, metrics, runs[0][0], runs[0][1], x_test, y_test, cfg)
    return metrics


def score_test_split(dataset: LabeledSet, probe, x_test: np.ndarray, y_test: np.ndarray, test_rows: list,
                 clips: bool) -> dict:
    """Test metrics of `probe` (anything with `scores(features) -> (N, C)` probabilities), per clip
    and per track when the rows are clips, else per item."""
    scores = probe.scores(x_test)
    score_fn = multilabel_metrics if dataset.multilabel else single_label_metrics
    result = {"clip": score_fn(y_test, scores, dataset.classes)} if clips else {}
    if clips:  # a track's score is the mean of its clips' scores (CLMR's protocol)
        tracks = sorted({t for _, t in test_rows})
        position = {t: i for i, t in enumerate(tracks)}
        sums = np.zeros((len(tracks), scores.shape[1]))
        counts = np.zeros(len(tracks))
        targets = [None] * len(tracks)
        for (_, t), s, y in zip(test_rows, scores, y_test):
            sums[position[t]] += s
            counts[position[t]] += 1
            targets[position[t]] = y
        scores, y_test = sums / counts[:, None], np.stack(targets)
    result["track"] = score_fn(y_test, scores, dataset.classes)
    return result


def mean_std(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values}


def _report(dataset, encoder, cfg, runs, label_fraction, batch, clip_seconds, windows, summary, rows) -> dict:
    multilabel = dataset.multilabel
    metrics: dict = {
        "dataset": dataset.name, "encoder": encoder.name, "encoder_fingerprint": encoder.fingerprint(),
        "multilabel": multilabel, "classes": dataset.classes,
        "protocol": {"probe": "linear (one layer) on frozen features" +
                     (", standardised by the train split" if cfg.standardize else ""),
                     "optimizer": f"AdamW lr {cfg.lr}, wd {cfg.weight_decay}, cosine, {cfg.warmup_epochs} warm-up "
                                  f"epochs, {cfg.epochs} epochs, batch {batch}",
                     "selection": "epoch with the best validation " + ("macro ROC-AUC" if multilabel else "top-1"),
                     "level": f"clip ({clip_seconds:g} s) and track (mean of clip scores)" if clip_seconds
                     else "item (one embedding per file: whole clip resized to the input frames"
                          + (", mean over sliding windows" if windows else "") + ")",
                     "label_fraction": label_fraction, "seeds": len(runs)},
        "counts": {s: len(r) for s, r in rows.items()} | {"train_tracks_used": [n for _, _, n in runs],
                                                           "skipped_files": len(summary.skipped)},
        "chosen_epochs": [p.epoch for p, _, _ in runs],
    }
    for level in runs[0][1]:
        metrics[level] = {name: mean_std([m[level][name] for _, m, _ in runs]) for name in HEADLINE[multilabel]}
        metrics[level]["seed0"] = runs[0][1][level]
    return metrics


def _write_outputs(out: Path, dataset, encoder, metrics, probe: Probe, test_metrics, x_test, y_test, cfg) -> None:
    write_text(out / "metrics.json", json.dumps(metrics, indent=2, default=_json_default))
    save_checkpoint(out / "probe.pt", {"model": probe.state(), "config": {"probe": asdict(cfg)},
                                       "classes": dataset.classes, "dataset": dataset.name,
                                       "encoder": encoder.name, "encoder_fingerprint": encoder.fingerprint(),
                                       "history": probe.history})
    level = "track"
    if dataset.multilabel:
        per_tag = test_metrics[level]["per_tag"]
        plots.plot_tag_auc(per_tag, out / "tag_auc.png")
    else:
        plots.plot_confusion(np.array(test_metrics[level]["confusion_matrix"]), dataset.classes,
                             out / "confusion_matrix.png")
        labels = [dataset.classes[i] for i in y_test]
        plots.plot_embedding_map(x_test, labels, out / "embedding_map.png")
    write_text(out / "summary.md", summary_markdown(metrics))


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def summary_markdown(metrics: dict) -> str:
    """A short markdown report of a metrics dict: headline table, protocol, counts."""
    names = HEADLINE[metrics["multilabel"]]
    levels = [lvl for lvl in ("clip", "track") if lvl in metrics]
    lines = [f"# Linear probe: {metrics['dataset']}", "", f"Encoder: `{metrics['encoder']}` "
             f"(fingerprint {metrics['encoder_fingerprint']})", "",
             "| level | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for level in levels:
        cells = [f"{metrics[level][n]['mean']:.4f} ± {metrics[level][n]['std']:.4f}" for n in names]
        lines.append(f"| {level} | " + " | ".join(cells) + " |")
    lines += ["", "Protocol:", ""] + [f"- {k}: {v}" for k, v in metrics["protocol"].items()]
    lines += ["", "Items: " + ", ".join(f"{k} {v}" for k, v in metrics["counts"].items()),
              f"Chosen epochs: {metrics['chosen_epochs']}", ""]
    return "\n".join(lines)


def load_probe(folder: str | Path) -> tuple[Probe, dict]:
    """The probe saved by linear-eval in `folder`, and its record (classes, encoder fingerprint …)."""
    from s3t.checkpoint import read_checkpoint

    state = read_checkpoint(Path(folder) / "probe.pt")
    return Probe.from_state(state["model"]), state


def predict(paths: Sequence[str | Path], encoder: Encoder, probe_dir: str | Path, top_k: int = 3) -> list[dict]:
    """Top-k classes (or tags) with scores for each audio file, from a probe saved by linear-eval."""
    probe, record = load_probe(probe_dir)
    if record["encoder_fingerprint"] != encoder.fingerprint():
        log.warning("the probe in %s was trained on the features of another encoder (%s); its scores are "
                    "meaningless for this one", probe_dir, record["encoder"])
    results: list[dict] = [{"path": str(path)} for path in paths]
    waves = {}
    for result in results:  # a file that cannot be read gets its reason, and the others their labels
        try:
            waves[result["path"]] = load_audio(result["path"])
            if len(waves[result["path"]]) < HOP_LENGTH:
                raise AudioError(result["path"], "too short: less than one hop")
        except AudioError as e:
            waves.pop(result["path"], None)
            log.warning("skipped %s: %s", result["path"], e.reason)
            result["error"] = e.reason
    good = [r for r in results if "error" not in r]
    scores = probe.scores(embed([waves[r["path"]] for r in good], encoder)) if good else []
    classes = record["classes"]
    for result, s in zip(good, scores):
        order = np.argsort(-s)[: max(1, top_k)]
        result["top"] = [{"label": classes[i], "score": float(s[i])} for i in order]
    return results


def format_predictions(results: list[dict]) -> str:
    width = max(len(r["path"]) for r in results)
    return "\n".join(f"{r['path']:<{width}}  " + ("  ".join(f"{t['label']} {t['score']:.3f}" for t in r["top"])
                                                   if "top" in r else f"error: {r['error']}") for r in results)
