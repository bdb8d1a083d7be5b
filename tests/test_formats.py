"""Every format a music library holds: what soundfile cannot read goes through FFmpeg (PyAV), with the
same contract (mono, 22,050 Hz, one clear skip reason per bad file), through prepare and embed here and
predict in tests/test_evaluate.py."""

import json

import numpy as np
import pytest
import soxr

from audio_fixtures import FFMPEG_FORMATS, synth_music, write_ffmpeg
from s3t.audio.decode import AudioError, load_audio
from s3t.cli import main as cli


@pytest.mark.parametrize("ext", sorted(FFMPEG_FORMATS))
def test_each_format_decodes_to_the_mono_mix_at_22050(ext, tmp_path):
    path = write_ffmpeg(tmp_path / f"song{ext}", seconds=2.0)
    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 2.0 * 22050) < 0.1 * 22050  # codecs add or drop a frame of padding
    rate = FFMPEG_FORMATS[ext][2]
    expected = soxr.resample(0.75 * synth_music(2.0, rate, 0), rate, 22050)  # the mean of a channel and its half
    rms = float(np.sqrt(np.mean(wave**2)))
    assert abs(rms / float(np.sqrt(np.mean(expected**2))) - 1) < 0.05
    assert len(load_audio(path, offset=0.5, duration=1.0)) == pytest.approx(22050, abs=2)


def test_truncated_and_fake_files_are_skipped_with_a_reason(tmp_path):
    whole = write_ffmpeg(tmp_path / "whole.m4a").read_bytes()
    (tmp_path / "cut.m4a").write_bytes(whole[: len(whole) // 2])  # mp4 keeps its index at the end
    (tmp_path / "fake.wma").write_bytes(b"not audio at all" * 200)
    for name in ("cut.m4a", "fake.wma"):
        with pytest.raises(AudioError, match="cannot decode"):
            load_audio(tmp_path / name)


def test_a_library_of_every_format_is_prepared_and_embedded(tmp_path):
    library = tmp_path / "library"
    for k, ext in enumerate(sorted(FFMPEG_FORMATS)):
        write_ffmpeg(library / f"track{k}{ext}", seconds=3.0, seed=k)
    (library / "broken.m4a").write_bytes(b"\0" * 4096)
    assert cli(["prepare", str(library), "--out", str(tmp_path / "cache"), "--workers", "0", "--no-progress"]) == 0
    summary = json.loads((tmp_path / "cache" / "last_prepare.json").read_text())
    assert summary["written"] == len(FFMPEG_FORMATS) and list(summary["skipped"]) == [str(library / "broken.m4a")]
    assert cli(["embed", str(tmp_path / "cache"), "--encoder", "random", "--config", "tiny", "--out",
                str(tmp_path / "f.npz"), "--no-progress"]) == 0
    features = np.load(tmp_path / "f.npz")
    assert features["features"].shape[0] == len(FFMPEG_FORMATS) and np.isfinite(features["features"]).all()
