"""The HEAR embedding API (hearbenchmark.com/hear-api), so that hear-eval-kit can run S3T encoders:

    python -m heareval.embeddings.runner s3t.hear --model path/to/export_or_checkpoint  # or --model "" : starter

`load_model` gives a torch module with `sample_rate`, `scene_embedding_size`, `timestamp_embedding_size`;
`get_scene_embeddings` reads each sound as `s3t embed` reads a clip; `get_timestamp_embeddings` gives one
vector every 2 CQT frames (46.4 ms), each the encoder's window centred there (`s3t.inference.frames`).
"""

from __future__ import annotations

import numpy as np
import torch

from s3t.audio.decode import SAMPLE_RATE
from s3t.inference.encoders import Encoder
from s3t.inference.features import embed
from s3t.inference.frames import default_hop, frame_embeddings
from s3t.inference.load import load_encoder


class HearModel(torch.nn.Module):
    """An S3T encoder as HEAR's runner takes it; `hop` (frames between timestamps) may be raised."""

    sample_rate = SAMPLE_RATE

    def __init__(self, encoder: Encoder):
        super().__init__()
        self.encoder = encoder
        self.scene_embedding_size = self.timestamp_embedding_size = encoder.num_features
        self.hop = default_hop(encoder)


def load_model(model_file_path: str = "") -> HearModel:
    """The encoder of a checkpoint or `s3t export` folder; "" gives the starter weights the package ships."""
    return HearModel(load_encoder(model_file_path or None))


def _waves(audio: torch.Tensor | np.ndarray) -> np.ndarray:
    x = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
    if x.ndim != 2:
        raise ValueError(f"HEAR audio is [n_sounds, n_samples], got shape {x.shape}")
    return x.astype(np.float32, copy=False)


def get_scene_embeddings(audio: torch.Tensor | np.ndarray, model: HearModel) -> torch.Tensor:
    """[n_sounds, n_samples] at 22,050 Hz -> float32 [n_sounds, scene_embedding_size]."""
    waves = _waves(audio)
    return torch.from_numpy(embed(list(waves), model.encoder)) if len(waves) else \
        torch.zeros(0, model.scene_embedding_size)


def get_timestamp_embeddings(audio: torch.Tensor | np.ndarray, model: HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """[n_sounds, n_samples] -> (float32 [n_sounds, n_timestamps, D], timestamps [n_sounds, n_timestamps] in ms,
    each the centre of its window: 0, one hop, … up to the last at or before the end)."""
    pairs = [frame_embeddings(wave, model.encoder, hop=model.hop) for wave in _waves(audio)]
    if not pairs:
        return torch.zeros(0, 0, model.timestamp_embedding_size), torch.zeros(0, 0)
    feats = torch.from_numpy(np.stack([f for _, f in pairs]))
    stamps = torch.from_numpy(np.stack([t * 1000.0 for t, _ in pairs]))
    return feats, stamps
