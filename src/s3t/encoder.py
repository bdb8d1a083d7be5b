"""Frozen encoders and the features they give: from checkpoints, caches, files or waves."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from s3t import audio
from s3t.augment import resize_time
from s3t.cache import Cache
from s3t.checkpoint import load_checkpoint
from s3t.config import ConfigError, ModelConfig, load_config
from s3t.files import atomic_write, create_memmap, write_json
from s3t.models import SAMPLES, build_encoder
from s3t.preprocess import model_input

log = logging.getLogger(__name__)


class Encoder(torch.nn.Module):
    """A frozen backbone with the input pipeline it was trained with: log-CQT (B, 84, T) -> (B, D).

    `time_compression` is that of the cache it was trained on: inputs must be prepared alike.
    `name` says where the weights came from (a checkpoint path, or 'random').
    """

    def __init__(self, backbone: torch.nn.Module, model_cfg: ModelConfig, time_compression: int = 1,
                 name: str = "random"):
        super().__init__()
        self.backbone = read_out(backbone, model_cfg).eval().requires_grad_(False)
        self.model_cfg, self.time_compression, self.name = model_cfg, time_compression, name
        self.frames = SAMPLES if backbone.input_kind == "wave" else model_cfg.frames
        self.num_features = self.backbone.num_features

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters(), torch.zeros(0)).device

    def uses_windows(self, windows: bool | None = None) -> bool:
        """`windows` if given, else what the encoder's config says (`model.embedding`)."""
        return self.model_cfg.embedding == "windows" if windows is None else windows

    @torch.no_grad()
    def forward(self, cqt: torch.Tensor) -> torch.Tensor:
        """(B, 84, T) log-CQTs -> (B, D); each resized in time to the input frames first."""
        cqt = resize_time(cqt.to(self.device, torch.float32), self.frames)  # (B, 84, frames)
        return self.backbone(model_input(cqt, self.model_cfg))

    def inputs_of(self, cqt: np.ndarray | torch.Tensor, windows: bool | None = None) -> torch.Tensor:
        """One clip's (84, T) log-CQT -> the (W, 84, frames) crops whose mean feature is its embedding:
        the whole clip resized (W = 1), or with `windows` every half-overlapping window of the input
        length (a clip shorter than one window is resized whole)."""
        x = torch.as_tensor(np.asarray(cqt, dtype=np.float32))
        T = x.shape[-1]
        if not self.uses_windows(windows) or T <= self.frames:
            return resize_time(x, self.frames).unsqueeze(0)
        hop = self.frames // 2
        starts = list(range(0, T - self.frames + 1, hop))
        return torch.stack([x[:, s : s + self.frames] for s in starts])

    def clip_of_wave(self, wave: np.ndarray) -> np.ndarray:
        """What `inputs_of` takes, from a mono 22,050 Hz wave: its (84, T) log-CQT."""
        from s3t.prepare import log_cqt_frames

        return log_cqt_frames(np.asarray(wave, np.float32), self.time_compression).T

    def clip_of_cache(self, cache: Cache, i: int) -> np.ndarray:
        """What `inputs_of` takes, for the cache's item i: its cached log-CQT."""
        return cache[i]

    def fingerprint(self) -> str:
        """A short hash of the weights and input pipeline: names feature files so they never go stale."""
        h = hashlib.sha1(repr((self.model_cfg, self.time_compression)).encode())
        for k, v in sorted(self.backbone.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:12]


def read_out(backbone: torch.nn.Module, model_cfg: ModelConfig) -> torch.nn.Module:
    """`backbone` pooled as `model.readout` says: itself, or a new module holding its weights."""
    if model_cfg.readout in ("", model_cfg.pooling):
        return backbone
    reader = build_encoder(replace(model_cfg, pooling=model_cfg.readout))
    reader.load_state_dict(backbone.state_dict())  # pooling holds no weights
    return reader.to(next(backbone.parameters()).device)


class WaveEncoder(Encoder):
    """A frozen waveform encoder (CLMR's SampleCNN): a clip's embedding is the mean feature of its
    consecutive 59,049-sample windows (CLMR's protocol), decoded from the source audio."""

    def inputs_of(self, wave: np.ndarray | torch.Tensor, windows: bool | None = None) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(wave, dtype=np.float32))
        if len(x) < SAMPLES:
            x = x.repeat(-(-SAMPLES // max(1, len(x))))
        return x[: len(x) // SAMPLES * SAMPLES].reshape(-1, SAMPLES)  # (W, SAMPLES)

    @torch.no_grad()
    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.backbone(waves.to(self.device, torch.float32)[:, None])

    def clip_of_wave(self, wave: np.ndarray) -> np.ndarray:
        return np.asarray(wave, np.float32)

    def clip_of_cache(self, cache: Cache, i: int) -> np.ndarray:
        source, start, seconds = cache.audio_span(i)
        return audio.load_audio(source, offset=start, duration=seconds)


class _NoWeights(torch.nn.Module):
    num_features = 2 * audio.N_BINS
    input_kind = "statistics"


class CqtStatsEncoder(Encoder):
    """The reference that needs no encoder (cqt-stats): per-bin mean and standard deviation of a
    clip's log-CQT over time, (84, T) -> (168,). A representation must beat it to be worth having."""

    def __init__(self, time_compression: int = 1):
        super().__init__(_NoWeights(), ModelConfig(), time_compression, name="cqt-stats")

    def inputs_of(self, cqt: np.ndarray | torch.Tensor, windows: bool | None = None) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(cqt, dtype=np.float32))  # (84, T)
        return torch.cat([x.mean(1), x.std(1, unbiased=False)]).unsqueeze(0)  # (1, 168)

    @torch.no_grad()
    def forward(self, stats: torch.Tensor) -> torch.Tensor:
        return stats.float()

    def fingerprint(self) -> str:
        return hashlib.sha1(f"cqt-stats/{self.time_compression}".encode()).hexdigest()[:12]


READOUT_KEYS = ("model.readout", "model.embedding")  # what may change on trained weights: neither holds any


def load_encoder(path: str | Path, device: str | torch.device = "cpu", readout: Sequence[str] = ()) -> Encoder:
    """The encoder of a training checkpoint (any method's: `s3t pretrain`, `s3t clmr`, `s3t supervised`),
    or of a folder `s3t export` wrote, frozen, with its input pipeline; `readout` overrides
    (`model.readout=rows`, `model.embedding=windows`) read the same weights another way."""
    if Path(path).is_dir():
        from s3t.export import from_pretrained

        return from_pretrained(path, device, readout)
    ckpt = load_checkpoint(path)
    return encoder_of(ckpt["config"], ckpt["encoder"], ckpt["cache_meta"], str(path), device, readout)


def encoder_of(config: dict, weights: dict, cache_meta: dict, name: str, device: str | torch.device = "cpu",
               readout: Sequence[str] = ()) -> Encoder:
    """The frozen encoder that `config` builds, holding `weights`, for inputs prepared as `cache_meta` says."""
    fixed = [o for o in readout if o.split("=", 1)[0].strip() not in READOUT_KEYS]
    if fixed:
        raise ConfigError(f"--set {' '.join(fixed)}: a trained encoder's model comes with its weights; only "
                          f"{' and '.join(READOUT_KEYS)} can be set")
    cfg = load_config(overrides=readout, base=config)
    backbone = build_encoder(cfg.model)
    backbone.load_state_dict(weights)
    if backbone.input_kind == "wave":
        return WaveEncoder(backbone, cfg.model, name=name).to(device)
    compression = int(cache_meta.get("time_compression", 1))
    return Encoder(backbone, cfg.model, compression, name=name).to(device)


def random_encoder(model_cfg: ModelConfig | None = None, seed: int = 0, time_compression: int = 1,
                   device: str | torch.device = "cpu") -> Encoder:
    """The Random Init baseline: an untrained encoder (seeded) with the same pipeline."""
    model_cfg = model_cfg or ModelConfig()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = build_encoder(model_cfg)
    return Encoder(backbone, model_cfg, time_compression, name=f"random(seed={seed})").to(device)


def embed_clips(encoder: Encoder, clips: Iterable[np.ndarray | torch.Tensor], windows: bool | None,
                batch_size: int) -> Iterable[np.ndarray]:
    """Yield one (D,) feature per clip the encoder takes ((84, T) log-CQTs, or waves), running it on
    batches of crops."""
    pending: list[torch.Tensor] = []  # crops waiting for a batch
    counts: list[int] = []  # crops per clip, in order
    done: list[torch.Tensor] = []  # features of the crops encoded so far

    def flush() -> None:
        if pending:
            done.extend(encoder(torch.cat(pending)).float().cpu())
            pending.clear()

    for clip in clips:
        crops = encoder.inputs_of(clip, windows)
        pending.append(crops)
        counts.append(len(crops))
        if sum(len(p) for p in pending) >= batch_size:
            flush()
        while counts and len(done) >= counts[0]:
            n = counts.pop(0)
            yield torch.stack(done[:n]).mean(0).numpy()
            del done[:n]
    flush()
    for n in counts:
        yield torch.stack(done[:n]).mean(0).numpy()
        del done[:n]


def extract_features(cache: Cache, encoder: Encoder, indices: Sequence[int] | None = None, windows: bool | None = None,
                     batch_size: int = 32, progress: bool = True) -> np.ndarray:
    """Features (N, D) float32 of the cache's tracks `indices` (all by default), in that order."""
    if not isinstance(encoder, WaveEncoder):
        _check_compression(cache, encoder)
    indices = range(len(cache)) if indices is None else indices
    clips = (encoder.clip_of_cache(cache, i) for i in tqdm(indices, desc="embed", unit="clip", disable=not progress))
    return np.stack(list(embed_clips(encoder, clips, windows, batch_size))) if len(indices) else \
        np.zeros((0, encoder.num_features), np.float32)


def _check_compression(cache: Cache, encoder: Encoder) -> None:
    c = int(cache.meta.get("time_compression", 1))
    if c != encoder.time_compression:
        raise ValueError(f"{cache.root} was prepared with --time-compression {c}, but the encoder was trained "
                         f"on {encoder.time_compression}; prepare the data again with "
                         f"--time-compression {encoder.time_compression}")


def embed(inputs: Sequence[str | Path | np.ndarray], encoder: Encoder, windows: bool | None = None,
          batch_size: int = 32) -> np.ndarray:
    """Features (N, D) of audio files (paths) or mono 22,050 Hz waves (1-D arrays)."""
    def clips():
        for item in inputs:
            yield encoder.clip_of_wave(item if isinstance(item, np.ndarray) else audio.load_audio(item))

    return np.stack(list(embed_clips(encoder, clips(), windows, batch_size)))


def embed_cache_to_file(cache: Cache, encoder: Encoder, out: str | Path, windows: bool | None = None,
                        batch_size: int = 32, chunk: int = 256, progress: bool = True) -> Path:
    """Write every track's feature to `out` (.npz: track_ids, features, encoder), resumably.

    Work in progress lives in `out`.partial/: a memory-mapped (N, D) features.npy filled chunk by
    chunk and progress.json saying how many rows are final, so memory stays flat, each chunk is
    written once, and a killed run redoes at most one chunk.
    """
    cache.verify()
    out = Path(out)
    work = out.with_name(out.name + ".partial")
    n, dim = len(cache), encoder.num_features
    if n == 0:
        _save_npz(out, track_ids=np.array([], dtype=str), features=np.zeros((0, dim), np.float32),
                  encoder=encoder.fingerprint())
        return out
    key = {"encoder": encoder.fingerprint(), "tracks": zlib.crc32("\n".join(cache.track_ids).encode()),
           "n": n, "dim": dim}
    state = _read_progress(work)
    if state is None or {k: state.get(k) for k in key} != key:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        create_memmap(work / "features.npy", (n, dim)).flush()
        state = {**key, "done": 0}
        _write_progress(work, state)
    elif state["done"]:
        log.info("resuming %s: %d of %d tracks done", out, state["done"], n)
    feats = np.load(work / "features.npy", mmap_mode="r+")
    bar = tqdm(total=n, initial=state["done"], desc="embed", unit="clip", disable=not progress)
    for start in range(state["done"], n, chunk):
        part = list(range(start, min(n, start + chunk)))
        feats[start : start + len(part)] = extract_features(cache, encoder, part, windows, batch_size, progress=False)
        feats.flush()
        _write_progress(work, {**key, "done": start + len(part)})
        bar.update(len(part))
    bar.close()
    _save_npz(out, track_ids=np.array(cache.track_ids), features=feats, encoder=key["encoder"])
    shutil.rmtree(work)
    return out


def _read_progress(work: Path) -> dict | None:
    try:
        return json.loads((work / "progress.json").read_text())
    except (OSError, ValueError):
        return None


def _write_progress(work: Path, state: dict) -> None:
    write_json(work / "progress.json", state)


def read_features(path: str | Path) -> dict[str, np.ndarray] | None:
    """The arrays of a features file, or None (with a warning) when it is damaged."""
    try:
        with np.load(path) as f:
            arrays = {k: f[k] for k in ("track_ids", "features", "encoder")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        log.warning("%s is damaged (%s: %s); computing it again", path, type(e).__name__, e)
        return None
    if arrays["features"].ndim != 2 or len(arrays["features"]) != len(arrays["track_ids"]):
        log.warning("%s holds %s features for %d tracks; computing it again", path, arrays["features"].shape,
                    len(arrays["track_ids"]))
        return None
    return arrays


def _save_npz(path: Path, **arrays) -> None:
    with atomic_write(path) as tmp:
        np.savez(tmp, **arrays)
