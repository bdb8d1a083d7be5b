"""`s3t predict`: genres or tags of audio files, from a probe `s3t linear-eval` saved."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from s3t.audio.constant_q import HOP_LENGTH
from s3t.audio.decode import AudioError, load_audio
from s3t.eval.probe import Probe
from s3t.inference.encoders import Encoder
from s3t.inference.features import embed
from s3t.io.checkpoint import read_checkpoint

log = logging.getLogger(__name__)


def load_probe(folder: str | Path) -> tuple[Probe, dict]:
    """The probe saved by linear-eval in `folder`, and its record (classes, encoder fingerprint …)."""
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
