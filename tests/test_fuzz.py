"""Property tests: arbitrary bytes and arrays give a finite result of the right shape or our
own exception, never anything else."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from s3t.audio import constant_q, decode
from s3t.config.schema import AugmentConfig
from s3t.transforms import augment, preprocess

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
HEADERS = [b"", b"RIFF\x24\x00\x00\x00WAVEfmt ", b"fLaC", b"OggS", b"ID3\x03\x00", b"\xff\xfb\x90\x00", b".snd"]


@FAST
@given(header=st.sampled_from(HEADERS), body=st.binary(max_size=4096),
       suffix=st.sampled_from([".wav", ".flac", ".ogg", ".mp3", ".au"]))
def test_load_audio_on_arbitrary_bytes(tmp_path, header, body, suffix):
    path = tmp_path / f"x{suffix}"
    path.write_bytes(header + body)
    try:
        wave = decode.load_audio(path)
    except decode.AudioError as e:
        assert str(path) in str(e)
        return
    assert wave.dtype == np.float32 and wave.ndim == 1 and np.isfinite(wave).all()


finite = st.floats(-1e4, 1e4, allow_nan=False, width=32)


@FAST
@given(wave=arrays(np.float32, st.integers(1, 6000), elements=st.one_of(finite, st.just(0.0))))
def test_cqt_of_any_finite_wave_is_finite(wave):
    spec = constant_q.cqt(torch.from_numpy(wave)[None])
    assert spec.shape == (1, constant_q.N_BINS, len(wave) // constant_q.HOP_LENGTH + 1)
    assert torch.isfinite(spec).all() and (spec >= constant_q.FLOOR_DB).all()


@FAST
@given(spec=arrays(np.float32, st.tuples(st.integers(1, 3), st.just(84), st.integers(1, 400)),
                   elements=st.floats(-100, 40, width=32)),
       seed=st.integers(0, 2**31))
def test_augment_keeps_shape_and_finiteness_for_any_length(spec, seed):
    x = torch.from_numpy(spec)
    y = augment.augment_batch(x, AugmentConfig(freq_mask_p=1, time_mask_p=1, warp_p=1, shift_p=1),
                              torch.Generator().manual_seed(seed))
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert y.min() >= min(x.min(), constant_q.FLOOR_DB) and y.max() <= x.max()


@FAST
@given(frames=st.integers(1, 1000), preprocessor=st.sampled_from(["time_fold", "freq_tile"]))
def test_preprocess_gives_the_square_or_says_how_many_frames(frames, preprocessor):
    x = torch.full((1, 84, frames), -30.0)
    want = preprocess.input_frames(preprocessor, 256)
    if frames != want:
        with pytest.raises(ValueError, match=f"{want} frames|split into"):
            preprocess.to_model_input(x, preprocessor, 256)
        return
    assert preprocess.to_model_input(x, preprocessor, 256).shape == (1, 1, 256, 256)
