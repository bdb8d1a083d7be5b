"""The CLMR baseline: SampleCNN's contract, NT-Xent against its definition, the invariants of each
waveform augmentation, and a run from the CLI to a linear probe."""

import csv
import dataclasses
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from audio_fixtures import write_labeled_music, write_music
from s3t.config.schema import ClmrConfig, ModelConfig
from s3t.data.preparation import prepare
from s3t.inference.encoders import WaveEncoder
from s3t.inference.features import embed
from s3t.inference.load import load_encoder
from s3t.methods.simclr import nt_xent
from s3t.models.backbones import SAMPLES, build_encoder
from s3t.transforms.waves import augment_waves

NONE = ClmrConfig(**{f.name: 0.0 for f in dataclasses.fields(ClmrConfig) if f.name.endswith("_p")})


def test_samplecnn_maps_59049_samples_to_one_feature_vector():
    model = build_encoder(ModelConfig(name="samplecnn_small"))
    y = model(torch.randn(2, 1, SAMPLES))
    assert y.shape == (2, 128) and torch.isfinite(y).all()
    y.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    full = build_encoder(ModelConfig(name="samplecnn"))
    assert sum(isinstance(m, torch.nn.MaxPool1d) for m in full.modules()) == 9  # 59049 / 3 / 3^9 = 1 step
    assert full.num_features == 512 and full.net[0].stride == (3,)
    with pytest.raises(ValueError, match=r"expected waves \(B, 1, 59049\)"):
        model(torch.randn(2, 1, 1000))


def test_nt_xent_is_the_cross_entropy_of_each_views_partner():
    torch.manual_seed(0)
    z1, z2 = torch.randn(3, 4), torch.randn(3, 4)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    expected = 0.0
    for i in range(6):  # by hand: softmax over the 5 other views, the partner is i ± 3
        others = [j for j in range(6) if j != i]
        logits = torch.stack([z[i] @ z[j] / 0.5 for j in others])
        expected -= torch.log_softmax(logits, 0)[others.index((i + 3) % 6)] / 6
    assert torch.allclose(nt_xent(z1, z2, 0.5), expected, atol=1e-6)
    same = torch.ones(4, 8)  # all views alike: every candidate equally likely
    assert float(nt_xent(same, same, 0.5)) == pytest.approx(math.log(7), abs=1e-5)


def waves(batch=4, seed=0):
    t = torch.arange(SAMPLES) / 22050
    return torch.stack([0.5 * torch.sin(2 * math.pi * (220 + 50 * k) * t) for k in range(batch)]) + \
        0.01 * torch.randn(batch, SAMPLES, generator=torch.Generator().manual_seed(seed))


def test_each_augmentation_does_what_it_says():
    x, gen = waves(), torch.Generator()
    assert torch.equal(augment_waves(x, NONE, gen.manual_seed(0)), x)  # all off: the identity
    assert torch.equal(augment_waves(x, dataclasses.replace(NONE, polarity_p=1.0), gen.manual_seed(0)), -x)
    gained = augment_waves(x, dataclasses.replace(NONE, gain_p=1.0), gen.manual_seed(0))
    ratio = gained / x
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-4)  # one gain per row
    assert ((ratio[:, 0] >= 10 ** (-6 / 20) - 1e-4) & (ratio[:, 0] <= 1 + 1e-4)).all()  # within [-6, 0] dB
    filtered = augment_waves(x, dataclasses.replace(NONE, filter_p=1.0), gen.manual_seed(0))
    spectrum_in, spectrum_out = torch.fft.rfft(x).abs(), torch.fft.rfft(filtered).abs()
    freqs = torch.fft.rfftfreq(SAMPLES, 1 / 22050)
    for row in range(4):  # a brick wall: the energy left is on one side of a cutoff in 200–4000 Hz
        kept = freqs[spectrum_out[row] > 1e-3 * spectrum_in[row].max()]
        assert len(kept) < len(freqs) and (not len(kept) or kept.min() >= 199 or kept.max() <= 4001)
    noisy = augment_waves(x, dataclasses.replace(NONE, noise_p=1.0), gen.manual_seed(0))
    assert 0.005 < float((noisy - x).std()) < 0.02
    everything = augment_waves(x, ClmrConfig(**{f.name: 1.0 for f in dataclasses.fields(ClmrConfig)
                                                if f.name.endswith("_p")}), gen.manual_seed(0))
    assert everything.shape == x.shape and torch.isfinite(everything).all()
    again = augment_waves(x, ClmrConfig(), gen.manual_seed(3))
    assert torch.equal(again, augment_waves(x, ClmrConfig(), gen.manual_seed(3)))  # seeded


def test_pitch_shift_moves_the_peak_by_the_ratio():
    t = torch.arange(SAMPLES) / 22050
    x = torch.sin(2 * math.pi * 440 * t)[None]
    shifted = augment_waves(x, dataclasses.replace(NONE, pitch_p=1.0), torch.Generator().manual_seed(1))
    freqs = torch.fft.rfftfreq(SAMPLES, 1 / 22050)
    peak = float(freqs[torch.fft.rfft(shifted[0]).abs().argmax()])
    semitones = 12 * math.log2(peak / 440)
    assert -5.1 <= semitones <= 5.1 and abs(semitones) > 0.05


def test_clmr_cli_run_is_probed_on_its_waveform_features(tmp_path):
    for i in range(8):
        write_music(tmp_path / "corpus" / f"c{i}.wav", seconds=4.0, seed=i)
    for label in (0, 1):
        for k in range(6):
            write_labeled_music(tmp_path / "labeled" / f"class{label}" / f"t{k}.wav", label, seed=label * 10 + k)
    prepare(tmp_path / "corpus", tmp_path / "cache", workers=0, progress=False)
    s3t = [sys.executable, "-m", "s3t"]
    run = subprocess.run([*s3t, "clmr", "--data", str(tmp_path / "cache"), "--out", str(tmp_path / "run"),
                          "--set", "model.name=samplecnn_small", "train.batch_size=4", "optim.epochs=2",
                          "train.workers=0", "--no-progress"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))  # once missing: clmr wrote no log
    assert [int(r["step"]) for r in rows][-1] == 4 and (tmp_path / "run" / "loss.png").exists()
    encoder = load_encoder(tmp_path / "run" / "last.pt")
    assert isinstance(encoder, WaveEncoder)
    a, b = embed([tmp_path / "labeled" / "class0" / "t0.wav", np.zeros(100, np.float32)], encoder)
    assert a.shape == (128,) and np.isfinite(a).all() and np.isfinite(b).all()
    probe = subprocess.run([*s3t, "linear-eval", "--dataset", "folder", "--root", str(tmp_path / "labeled"),
                            "--checkpoint", str(tmp_path / "run" / "last.pt"), "--out", str(tmp_path / "probe"),
                            "--set", "probe.epochs=5", "--workers", "0", "--no-progress"],
                           capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr
    assert "| track |" in probe.stdout
