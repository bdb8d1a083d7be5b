"""`s3t export --onnx`: a frozen encoder as an ONNX graph, for runtimes without PyTorch.

The graph takes what `Encoder.forward` takes after the CQT: `log_cqt`, float32 (batch, 84, frames) in dB
(floor −100; `frames` is the encoder's input length, 768 for `cpu-small`), and gives `features`, float32
(batch, D). The pre-processor (time folding, padding, the fixed dB scaling) and the readout are in the
graph; the CQT front end stays in Python (`s3t.audio.constant_q.log_cqt_frames`): its strided octave
convolutions would export, but a graph of fixed audio length gains nothing over computing it once.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from s3t.audio.constant_q import N_BINS
from s3t.inference.encoders import Encoder
from s3t.io.files import atomic_write

OPSET = 17
ONNX_NAME = "encoder.onnx"  # beside config.json in an `s3t export` folder


def export_onnx(encoder: Encoder, out: str | Path) -> Path:
    """Write `encoder` (spectrogram encoders only; moved to the CPU, in eval mode) to the ONNX file `out`,
    batch size left free."""
    kind = getattr(encoder.backbone, "input_kind", "")
    if kind != "spectrogram":
        raise ValueError(f"ONNX export takes a spectrogram encoder; {encoder.name} reads {kind or 'other'} input")
    try:
        import onnx  # noqa: F401  (torch's exporter writes through it)
    except ImportError:
        raise RuntimeError("ONNX export needs the onnx package: pip install 's3t[onnx]'") from None
    encoder = encoder.cpu().eval()
    example = torch.full((2, N_BINS, encoder.frames), -50.0)
    with atomic_write(Path(out)) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shape checks that hold for this input length
        torch.onnx.export(encoder, (example,), str(tmp), input_names=["log_cqt"], output_names=["features"],
                          dynamic_axes={"log_cqt": {0: "batch"}, "features": {0: "batch"}}, opset_version=OPSET,
                          training=torch.onnx.TrainingMode.EVAL, dynamo=False)
    return Path(out)
