"""`s3t.hear`, the HEAR API: every rule hear-validator checks (shapes, dtypes, the embedding sizes the model
states, the hop constant within 1 ms, the first timestamp within one hop of 0, the last within one hop of
the end and never past it), on the validator's white noise at 1.07, 1.98 and 4.0 s, a batch of sounds of one
length, the starter weights, and a 10-minute sound in bounded memory."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from s3t import hear
from s3t.config.loading import load_config
from s3t.inference.encoders import random_encoder


@pytest.fixture(scope="module")
def model():
    return hear.HearModel(random_encoder(load_config(["tiny"]).model, seed=0))


def white_noise(n_sounds: int, seconds: float, sample_rate: int = 22050) -> torch.Tensor:
    return torch.rand(n_sounds, int(seconds * sample_rate), generator=torch.Generator().manual_seed(0)) * 2 - 1


def check_timestamp_rules(model, audio: torch.Tensor) -> None:
    """hear-validator's checks of get_timestamp_embeddings, as errors (its warnings included)."""
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    length_ms = 1000 * audio.shape[1] / model.sample_rate
    assert embeddings.dtype == torch.float32 and embeddings.ndim == 3 and timestamps.ndim == 2
    assert embeddings.shape[0] == len(audio) and embeddings.shape[:2] == timestamps.shape
    assert embeddings.shape[2] == model.timestamp_embedding_size
    diff = np.diff(timestamps.numpy())
    assert diff.max() <= 50.0  # the hop HEAR asks for music transcription
    assert np.abs(diff - diff.mean()).max() <= 1.0
    assert timestamps.min() <= diff.mean()
    assert length_ms - diff.mean() <= timestamps.max() <= length_ms
    assert (timestamps == timestamps[0]).all()  # one grid for sounds of one length
    assert torch.isfinite(embeddings).all()


@pytest.mark.parametrize("seconds", [1.07, 1.98, 4.0])
def test_timestamp_embeddings_keep_every_validator_rule(model, seconds):
    check_timestamp_rules(model, white_noise(1, seconds))


def test_a_batch_of_sounds_of_one_length_gets_one_grid_and_each_its_own_embeddings(model):
    audio = white_noise(3, 1.98)
    check_timestamp_rules(model, audio)
    embeddings, _ = hear.get_timestamp_embeddings(audio, model)
    alone, _ = hear.get_timestamp_embeddings(audio[1:2], model)
    torch.testing.assert_close(embeddings[1:2], alone, atol=1e-5, rtol=0)
    assert not torch.allclose(embeddings[0], embeddings[1])


def test_scene_embeddings_are_float32_one_row_per_sound(model):
    scenes = hear.get_scene_embeddings(white_noise(4, 2.74), model)  # the validator's call
    assert scenes.dtype == torch.float32 and scenes.shape == (4, model.scene_embedding_size)


def test_load_model_with_no_path_gives_the_starter_weights_at_22050_hz():
    model = hear.load_model("")
    assert isinstance(model, torch.nn.Module) and model.sample_rate == 22050
    assert model.scene_embedding_size == model.timestamp_embedding_size == 2048  # cpu-small's rows readout
    check_timestamp_rules(model, white_noise(1, 1.07))
    assert hear.get_scene_embeddings(white_noise(2, 1.07), model).shape == (2, 2048)


MEMORY = """
import resource, sys, torch
from s3t import hear
from s3t.inference.encoders import CqtStatsEncoder
model = hear.HearModel(CqtStatsEncoder())
model.hop = 40  # 929 ms: 646 windows, each its 84 x 768 statistics
audio = torch.rand(1, int(float(sys.argv[1]) * 22050)) * 2 - 1
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
print(embeddings.shape[1], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def test_a_ten_minute_sound_is_embedded_in_memory_bounded_by_the_chunk():
    """cqt-stats stands in for a network (fast): all its 646 windows at once would be 167 MB, the 10-minute
    CQT 9 MB; the input itself (53 MB) is held before the measure starts."""
    out = subprocess.run([sys.executable, "-c", MEMORY, "600"], capture_output=True, text=True, check=True)
    n_timestamps, growth_kib = map(int, out.stdout.split())
    assert n_timestamps == 646  # 600 s at 928.8 ms, 0 included
    assert growth_kib < 64 * 1024, f"peak RSS grew {growth_kib / 1024:.0f} MiB while embedding 10 minutes"
