"""`s3t export --onnx`: onnxruntime runs the exported graph to PyTorch's features within 1e-4 on CPU, for
any batch size, for the starter ResNet (rows readout) and a Swin."""

import numpy as np
import onnxruntime
import pytest
import torch

from s3t.config.loading import load_config
from s3t.inference.encoders import CqtStatsEncoder, random_encoder
from s3t.inference.load import load_encoder
from s3t.inference.onnx_export import export_onnx


def run_onnx(path, log_cqt: torch.Tensor) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["features"], {"log_cqt": log_cqt.numpy()})[0]


def spectrograms(n: int, frames: int) -> torch.Tensor:
    return torch.rand(n, 84, frames, generator=torch.Generator().manual_seed(n)) * 80 - 90  # dB


@pytest.mark.parametrize("encoder", ["tiny-swin", "starter"])
def test_onnxruntime_gives_the_pytorch_features(encoder, tmp_path):
    enc = load_encoder() if encoder == "starter" else random_encoder(load_config(["tiny"]).model, seed=0)
    path = export_onnx(enc, tmp_path / "encoder.onnx")
    for n in (1, 3):  # the batch axis is free
        x = spectrograms(n, enc.frames)
        np.testing.assert_allclose(run_onnx(path, x), enc(x).numpy(), atol=1e-4, rtol=0)


def test_an_encoder_without_a_spectrogram_input_is_refused(tmp_path):
    with pytest.raises(ValueError, match="spectrogram encoder"):
        export_onnx(CqtStatsEncoder(), tmp_path / "x.onnx")
