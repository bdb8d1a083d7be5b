"""`s3t linear-eval`: a labeled dataset -> cache -> frozen features (once) -> linear probes -> metrics,
plots and a markdown summary (`s3t.eval.predict` applies the saved probe to new audio)."""

from __future__ import annotations

import csv
import io
import json
import logging
import statistics
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from s3t.config.schema import ProbeConfig
from s3t.data.labeled_cache import LabeledCache
from s3t.data.labeled_set import HEADLINE, LabeledSet
from s3t.eval import plots
from s3t.eval.bootstrap import DRAWS, track_interval
from s3t.eval.probe import HEADLINE_METRICS, Probe, multilabel_metrics, single_label_metrics, train_probe
from s3t.inference.encoders import Encoder
from s3t.inference.features import embed_cache_to_file, read_features
from s3t.io.checkpoint import save_checkpoint
from s3t.io.files import write_text

log = logging.getLogger(__name__)


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
    device = str(encoder.device)  # the CQT runs where the encoder does
    data = LabeledCache.prepare(dataset, out, cache_dir, encoder.time_compression, clip_seconds, workers, progress,
                                device)
    dataset, cache = data.dataset, data.cache
    feature_file = out / "features" / f"{encoder.fingerprint()}{'-windows' if windows else ''}.npz"
    feature_file.parent.mkdir(parents=True, exist_ok=True)
    stored = read_features(feature_file) if feature_file.exists() else None
    if stored is None or set(map(str, stored["track_ids"])) != set(cache.track_ids):
        embed_cache_to_file(cache, encoder, feature_file, windows=windows, progress=progress)
        stored = read_features(feature_file)
    features = {str(t): v for t, v in zip(stored["track_ids"], stored["features"])}

    def arrays(rows):
        return np.stack([features[cid] for cid, _ in rows]), data.targets(rows)

    batch = cfg.batch_size or dataset.probe_batch
    x_valid, y_valid = arrays(data.rows["valid"])
    x_test, y_test = arrays(data.rows["test"])

    def probes(probe_cfg: ProbeConfig) -> list:
        runs = []
        for seed in range(seeds):
            train = data.train_subset(label_fraction, seed)
            x_train, y_train = arrays(train)
            probe = train_probe(x_train, y_train, x_valid, y_valid, len(dataset.classes), dataset.multilabel,
                                probe_cfg, batch, seed)
            runs.append((probe, score_test_split(dataset, probe, x_test, y_test, data.rows["test"], data.clips),
                         len({t for _, t in train})))
        return runs

    runs = probes(cfg)
    metrics = _report(dataset, encoder, cfg, runs, label_fraction, batch, clip_seconds, windows, data.summary,
                      data.rows)
    if cfg.also_mlp and cfg.kind == "linear":  # the same features, seeds and selection; MARBLE's probe
        mlp = _report(dataset, encoder, replace(cfg, kind="mlp"), probes(replace(cfg, kind="mlp")), label_fraction,
                      batch, clip_seconds, windows, data.summary, data.rows)
        metrics["mlp"] = {k: mlp[k] for k in mlp if k in ("protocol", "chosen_epochs", "clip", "track")}
    for level, intervals in test_intervals(dataset, [p for p, _, _ in runs], x_test, y_test, data.rows["test"],
                                           data.clips).items():
        for name, interval in intervals.items():
            metrics[level][name]["ci95"] = interval
    _write_outputs(out, dataset, encoder, metrics, runs[0][0], runs[0][1], x_test, y_test, cfg)
    if data.clips and not dataset.multilabel:
        hits = [{"seed": seed, **h} for seed, (probe, _, _) in enumerate(runs)
                for h in hits_per_track(probe, x_test, y_test, data.rows["test"])]
        write_text(out / "test_hits.csv", _csv(hits))
    return metrics


def _csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def score_test_split(dataset: LabeledSet, probe, x_test: np.ndarray, y_test: np.ndarray, test_rows: list,
                 clips: bool) -> dict:
    """Test metrics of `probe` (anything with `scores(features) -> (N, C)` probabilities), per clip
    and per track when the rows are clips, else per item."""
    scores = probe.scores(x_test)
    score_fn = multilabel_metrics if dataset.multilabel else single_label_metrics
    result = {"clip": score_fn(y_test, scores, dataset.classes)} if clips else {}
    if clips:
        _, scores, y_test, _ = per_track(scores, y_test, test_rows)
    result["track"] = score_fn(y_test, scores, dataset.classes)
    return result


def test_intervals(dataset: LabeledSet, probes: list, x_test: np.ndarray, y_test: np.ndarray, test_rows: list,
                   clips: bool) -> dict:
    """95 % bootstrap intervals over test tracks of each headline metric, per level, of the mean over `probes`."""
    scores = [p.scores(x_test) for p in probes]
    draws = DRAWS[dataset.multilabel]
    levels = {"clip": (scores, y_test, [t for _, t in test_rows])} if clips else {}
    if clips:
        tracked = [per_track(s, y_test, test_rows) for s in scores]
        levels["track"] = ([t[1] for t in tracked], tracked[0][2], tracked[0][0])
    else:
        levels["track"] = (scores, y_test, [t for _, t in test_rows])
    return {level: {name: track_interval(HEADLINE_METRICS[name], s, y, groups, draws)
                    for name in HEADLINE[dataset.multilabel]} for level, (s, y, groups) in levels.items()}


def per_track(scores: np.ndarray, targets: np.ndarray, rows: list) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """Clip rows (clip id, track) gathered by track: the tracks in sorted order, the mean of each
    one's clip scores (CLMR's protocol), its target and the index of its track for every row."""
    tracks = sorted({t for _, t in rows})
    position = {t: i for i, t in enumerate(tracks)}
    where = np.array([position[t] for _, t in rows])
    sums = np.zeros((len(tracks), scores.shape[1]))
    np.add.at(sums, where, scores)
    first = np.unique(where, return_index=True)[1]  # a row of each track, in track order
    return tracks, sums / np.bincount(where)[:, None], np.asarray(targets)[first], where


def hits_per_track(probe, x_test: np.ndarray, y_test: np.ndarray, test_rows: list) -> list[dict]:
    """Per test track of a single-label clip split: its clips the probe gets right, its clips, and
    whether the mean of its clip scores is right; what paired comparisons of two encoders resample."""
    scores = probe.scores(x_test)
    tracks, track_scores, track_targets, where = per_track(scores, y_test, test_rows)
    right = np.bincount(where, weights=scores.argmax(1) == y_test)
    clips = np.bincount(where)
    return [{"track": t, "clips_right": int(r), "clips": int(n), "track_right": int(s.argmax() == y)}
            for t, r, n, s, y in zip(tracks, right, clips, track_scores, track_targets)]


def mean_std(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values}


def _report(dataset, encoder, cfg, runs, label_fraction, batch, clip_seconds, windows, summary, rows) -> dict:
    multilabel = dataset.multilabel
    metrics: dict = {
        "dataset": dataset.name, "encoder": encoder.name, "encoder_fingerprint": encoder.fingerprint(),
        "multilabel": multilabel, "classes": dataset.classes,
        "protocol": {"probe": ("linear (one layer)" if cfg.kind == "linear" else
                               f"MLP (one hidden layer of {cfg.hidden}, ReLU, dropout {cfg.dropout})") +
                              " on frozen features" +
                     (", standardised by the train split" if cfg.standardize else ""),
                     "optimizer": f"AdamW lr {cfg.lr}, wd {cfg.weight_decay}, cosine, {cfg.warmup_epochs} warm-up "
                                  f"epochs, {cfg.epochs} epochs, batch {batch}",
                     "selection": "epoch with the best validation " + ("macro ROC-AUC" if multilabel else "top-1"),
                     "level": f"clip ({clip_seconds:g} s) and track (mean of clip scores)" if clip_seconds
                     else "item (one embedding per file: whole clip resized to the input frames"
                          + (", mean over sliding windows" if windows else "")
                          + f"; shorter ones read {encoder.model_cfg.short})",
                     "label_fraction": label_fraction, "seeds": len(runs),
                     "interval": "ci95: 95 % bootstrap over test tracks of the mean over probe seeds "
                                 f"({DRAWS[multilabel]} draws)"},
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


def _interval(score: dict) -> str:
    lo, hi = score.get("ci95", (None, None))
    return f" [{lo:.4f}, {hi:.4f}]" if lo is not None else ""


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
             "| level | " + " | ".join(f"{n} (± probe seeds [95 % CI])" for n in names) + " |",
             "| --- |" + " --- |" * len(names)]
    for level in levels:
        cells = [f"{metrics[level][n]['mean']:.4f} ± {metrics[level][n]['std']:.4f}" + _interval(metrics[level][n])
                 for n in names]
        lines.append(f"| {level} | " + " | ".join(cells) + " |")
        if "mlp" in metrics:
            cells = [f"{metrics['mlp'][level][n]['mean']:.4f} ± {metrics['mlp'][level][n]['std']:.4f}" for n in names]
            lines.append(f"| {level}, MLP probe | " + " | ".join(cells) + " |")
    lines += ["", "Protocol:", ""] + [f"- {k}: {v}" for k, v in metrics["protocol"].items()]
    lines += ["", "Items: " + ", ".join(f"{k} {v}" for k, v in metrics["counts"].items()),
              f"Chosen epochs: {metrics['chosen_epochs']}", ""]
    return "\n".join(lines)
