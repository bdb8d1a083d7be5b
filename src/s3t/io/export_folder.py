"""`s3t export`: a trained encoder as a Hub-style folder with no pickle in it, and reading one back.

The folder holds `config.json` (the run's resolved config, method, progress, cache meta and the
SHA-256 of the weights file), `model.safetensors` (the encoder's weights only; its metadata holds
the SHA-256 of config.json's `config` and `cache_meta`) and a generated `README.md` model card.
Either file edited after export is refused on load, with the file named.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from huggingface_hub import snapshot_download
from safetensors import safe_open
from safetensors.torch import save_file

from s3t.io.checkpoint import CheckpointError, load_checkpoint
from s3t.io.files import atomic_write, write_text
from s3t.version import __version__

CONFIG, WEIGHTS, CARD = "config.json", "model.safetensors", "README.md"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pipeline_sha(record: dict) -> str:
    """What must travel with the weights: the config that builds the encoder and the input's cache meta."""
    return hashlib.sha256(json.dumps([record["config"], record["cache_meta"]], sort_keys=True).encode()).hexdigest()


def export(checkpoint: str | Path, out: str | Path, licence: str = "unspecified") -> Path:
    """Write `checkpoint`'s encoder to the folder `out` (config.json, model.safetensors, README.md)."""
    state, out = load_checkpoint(checkpoint), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"s3t_version": __version__, "method": state["method"], "config": state["config"],
              "cache_meta": state["cache_meta"], "progress": state["progress"], "licence": licence}
    tensors = {k: v.detach().cpu().contiguous() for k, v in state["encoder"].items()}
    with atomic_write(out / WEIGHTS) as tmp:
        # one metadata key: safetensors writes several in a random order, so two exports of the same
        # weights differed in their bytes (and the shipped starter's hash with them)
        save_file(tensors, str(tmp), metadata={"pipeline_sha256": _pipeline_sha(record)})
    record["weights_sha256"] = _sha256(out / WEIGHTS)
    write_text(out / CONFIG, json.dumps(record, indent=2, default=str))
    write_text(out / CARD, model_card(record, sum(t.numel() for t in tensors.values()), Path(checkpoint)))
    return out


def model_card(record: dict, parameters: int, checkpoint: Path) -> str:
    """A README.md for the exported folder: what the encoder is, how it was trained, how to load it."""
    cfg, progress = record["config"], record["progress"]
    model = cfg["model"]
    probes = sorted(checkpoint.parent.glob("**/metrics.json"))
    lines = ["---", f"license: {record['licence']}", "library_name: s3t", "tags: [audio, music, self-supervised]",
             "---", "", f"# S3T encoder: {model['name']} ({record['method']})", "",
             f"- Architecture: `{model['name']}`, {parameters / 1e6:.2f} M parameters, pre-processor "
             f"`{model['preprocessor']}` at {model['input_size']} × {model['input_size']}, pooling `{model.get('readout') or model['pooling']}`",
             f"- Training: method `{record['method']}`, {progress['step']} steps, {progress['epoch']} epochs; cache "
             f"time compression {record['cache_meta'].get('time_compression', 1)}, clips of "
             f"{record['cache_meta'].get('clip_seconds', 0) or 'whole tracks'} s",
             f"- Exported from `{checkpoint}` by s3t {record['s3t_version']}", "", "## Probe results found beside the run", ""]
    lines += [f"- `{p}`: {_headline(json.loads(p.read_text()))}" for p in probes] or ["- none"]
    lines += ["", "## Use", "", "```python", "import s3t", "", "encoder = s3t.from_pretrained(\"THIS_FOLDER\")",
              "features = s3t.embed([\"song.mp3\"], encoder)", "```", "",
              "or `s3t embed music/ --checkpoint THIS_FOLDER --out feats.npz`.", ""]
    return "\n".join(lines)


def _headline(metrics: dict) -> str:
    """'track top1_accuracy 0.5135 ± 0.0000, …' from a linear-eval metrics.json."""
    return ", ".join(f"{level} {name} {value['mean']:.4f} ± {value['std']:.4f}" for level in ("clip", "track")
                     if level in metrics for name, value in metrics[level].items()
                     if isinstance(value, dict) and "mean" in value)


def read_export(path_or_repo: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """The record (config.json) and weights of an exported folder, or of a Hugging Face Hub repo id
    holding one, checked against tampering; no pickle is read."""
    folder = Path(path_or_repo)
    if not folder.is_dir():
        folder = Path(snapshot_download(str(path_or_repo), allow_patterns=[CONFIG, WEIGHTS]))  # the local Hub cache
    record, weights = _read_record(folder), folder / WEIGHTS
    if _sha256(weights) != record.get("weights_sha256"):
        raise CheckpointError(f"{weights}: does not match the SHA-256 in {folder / CONFIG}: the weights were changed "
                              "after export")
    with safe_open(str(weights), framework="pt") as f:
        if (f.metadata() or {}).get("pipeline_sha256") != _pipeline_sha(record):
            raise CheckpointError(f"{folder / CONFIG}: its config or cache_meta differ from what was exported with "
                                  "the weights")
        return record, {k: f.get_tensor(k) for k in f.keys()}


def saved_config(path: str | Path) -> dict:
    """The resolved config saved with a training checkpoint or in an exported folder."""
    return _read_record(Path(path))["config"] if Path(path).is_dir() else load_checkpoint(path)["config"]


def _read_record(folder: Path) -> dict:
    try:
        record = json.loads((folder / CONFIG).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{folder}: not an exported S3T encoder ({CONFIG}: {e})") from None
    missing = [k for k in ("config", "cache_meta", "weights_sha256") if k not in record]
    if missing or not (folder / WEIGHTS).is_file():
        raise CheckpointError(f"{folder}: not an exported S3T encoder (expected {CONFIG} with {', '.join(missing) or 'its keys'} "
                              f"and {WEIGHTS})")
    return record
