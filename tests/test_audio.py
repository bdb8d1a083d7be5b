import math
import os

import librosa
import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from audio_fixtures import synth_music, write_audio, write_broken_files, write_music
from s3t.audio import constant_q
from s3t.audio.constant_q import cqt
from s3t.audio.decode import AudioError, load_audio


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def librosa_cqt(y: np.ndarray) -> np.ndarray:
    return np.abs(librosa.cqt(y, sr=22050, hop_length=512, fmin=librosa.note_to_hz("C1"), n_bins=84,
                              bins_per_octave=12))


# --- load_audio -------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg", ".mp3", ".au"])
def test_load_audio_decodes_every_format_to_mono_22050(tmp_path, ext):
    wave = synth_music(2.0, sr=44100)
    path = write_audio(tmp_path / f"x{ext}", wave, sr=44100, channels=2)
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    # MP3 adds encoder delay/padding; all others keep the length exactly
    assert abs(len(y) - 44100) <= (2048 if ext == ".mp3" else 1)
    if ext in (".wav", ".flac", ".au"):  # lossless: equal to the reference resampling
        ref = soxr.resample(sf.read(str(path), dtype="float32")[0].mean(1), 44100, 22050, quality="HQ")
        np.testing.assert_allclose(y, ref, atol=1e-6)


def test_load_audio_averages_channels(tmp_path):
    left, right = np.full(1000, 0.5, np.float32), np.full(1000, -0.25, np.float32)
    path = tmp_path / "st.wav"
    sf.write(str(path), np.stack([left, right], 1), 22050, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), 0.125, atol=1e-7)


def test_load_audio_offset_and_duration(tmp_path):
    ramp = (np.arange(22050 * 2) / (22050 * 2)).astype(np.float32)
    path = tmp_path / "ramp.wav"
    sf.write(str(path), ramp, 22050, subtype="FLOAT")
    y = load_audio(path, offset=0.5, duration=1.0)
    np.testing.assert_array_equal(y, ramp[11025 : 11025 + 22050])
    assert len(load_audio(path, offset=1.5)) == 11025


@pytest.mark.parametrize("kind", ["empty", "random_bytes", "text", "truncated"])
def test_load_audio_raises_audio_error_naming_the_file(tmp_path, kind):
    path = write_broken_files(tmp_path)[kind]
    with pytest.raises(AudioError) as info:
        load_audio(path)
    assert str(path) in str(info.value)


def test_load_audio_rejects_zero_samples_and_non_finite(tmp_path):
    empty = tmp_path / "zero.wav"
    sf.write(str(empty), np.zeros(0, np.float32), 22050)
    with pytest.raises(AudioError, match="no audio samples"):
        load_audio(empty)
    bad = tmp_path / "nan.wav"
    sf.write(str(bad), np.array([0.1, np.nan, 0.2], np.float32), 22050, subtype="FLOAT")
    with pytest.raises(AudioError, match="non-finite"):
        load_audio(bad)
    with pytest.raises(AudioError, match=r"cannot open \(No such file"):
        load_audio(tmp_path / "missing.wav")
    os.mkfifo(tmp_path / "pipe.wav")  # opening it would wait for a writer forever
    with pytest.raises(AudioError, match="not a regular file"):
        load_audio(tmp_path / "pipe.wav")


# --- CQT --------------------------------------------------------------------------------------


def test_cqt_shape_and_layout():
    x = torch.zeros(3, 22050)
    out = cqt(x)
    assert out.shape == (3, 84, 22050 // 512 + 1) == (3, constant_q.N_BINS, constant_q.n_frames(22050))
    assert out.dtype == torch.float32
    assert cqt(np.zeros(600, np.float32)).shape == (1, 84, 2)


def test_log_cqt_is_the_floor_on_digital_silence():
    out = cqt(torch.zeros(2, 4096))
    assert torch.isfinite(out).all()
    assert torch.all(out == constant_q.FLOOR_DB)


def test_pure_tone_peaks_in_its_bin():
    t = np.arange(22050) / 22050
    for midi_bin, hz in [(45, 440.0), (24, 130.8128), (69, 1760.0)]:  # A4, C3, A6 above C1
        tone = np.sin(2 * np.pi * hz * t).astype(np.float32)
        mag = cqt(tone, log=False)[0, :, 10:-10].mean(1)
        assert int(mag.argmax()) == midi_bin


def test_cqt_equals_nnaudio_full_convolution():
    from nnAudio.features.cqt import CQT1992v2

    x = torch.from_numpy(np.stack([synth_music(3.0, seed=s) for s in range(2)]))
    ref = CQT1992v2(sr=22050, hop_length=512, fmin=constant_q.FMIN, n_bins=84, bins_per_octave=12,
                    pad_mode="constant", verbose=False)(x)
    ours = cqt(x, log=False)
    assert ours.shape == ref.shape
    assert rel_err(ours.numpy(), ref.numpy()) < 1e-5


def test_cqt_batched_equals_one_by_one():
    x = torch.from_numpy(np.stack([synth_music(2.0, seed=s) for s in range(3)]))
    batched = cqt(x, log=False)
    for i in range(3):
        torch.testing.assert_close(batched[i], cqt(x[i], log=False)[0], rtol=1e-4, atol=1e-5)


def test_cqt_matches_librosa_on_synthesised_music():
    y = synth_music(10.0, seed=3)
    ours = cqt(y, log=False)[0].numpy()
    ref = librosa_cqt(y)
    assert ours.shape == ref.shape
    assert rel_err(ours, ref) <= 0.05


def test_cqt_matches_librosa_on_real_music(realmusic_paths):
    for path in realmusic_paths:
        y = load_audio(path, offset=20.0, duration=20.0)
        ours = cqt(y, log=False)[0].numpy()
        assert rel_err(ours, librosa_cqt(y)) <= 0.05, path


def test_amplitude_to_db_values():
    mag = torch.tensor([0.0, 1e-6, 1e-5, 1.0, 10.0])
    torch.testing.assert_close(constant_q.amplitude_to_db(mag), torch.tensor([-100.0, -100.0, -100.0, 0.0, 20.0]))


def test_compress_time_averages_and_keeps_the_remainder():
    mag = torch.arange(10.0).view(1, 1, 10).expand(2, 84, 10)
    out = constant_q.compress_time(mag, 4)
    assert out.shape == (2, 84, 3)
    torch.testing.assert_close(out[0, 0], torch.tensor([1.5, 5.5, 8.5]))
    assert constant_q.compress_time(mag, 1) is mag
    with pytest.raises(ValueError):
        constant_q.compress_time(mag, 0)


def test_floor_constant():
    assert constant_q.FLOOR_DB == pytest.approx(20 * math.log10(constant_q.AMIN))
    assert constant_q.FMIN == pytest.approx(librosa.note_to_hz("C1"))


def test_cqt_of_written_file_roundtrip(tmp_path):
    path = write_music(tmp_path / "a.flac", seconds=2.0, sr=44100, channels=2)
    out = cqt(load_audio(path))
    assert out.shape == (1, 84, constant_q.n_frames(44100))
    assert torch.isfinite(out).all() and out.max() > -40


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cqt_on_gpu_matches_cpu():
    x = torch.from_numpy(np.stack([synth_music(5.0, seed=s) for s in range(4)]))
    cpu = cqt(x, log=False)
    gpu = cqt(x.cuda(), log=False)
    assert gpu.device.type == "cuda"
    assert rel_err(gpu.cpu().numpy(), cpu.numpy()) < 1e-4
