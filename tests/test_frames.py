"""Frame-level embeddings (`s3t.inference.frames`): a chunk's CQT equals the full pass's, chunked frame
features equal one full pass, and the timestamps sit where HEAR's rules put them."""

import numpy as np
import pytest
import torch

from audio_fixtures import synth_music
from s3t.audio.constant_q import FLOOR_DB, amplitude_to_db, compress_time, cqt
from s3t.config.loading import load_config
from s3t.inference.encoders import random_encoder
from s3t.inference.frames import cqt_frame_embeddings, default_hop, frame_embeddings, log_cqt_span

WAVE = synth_music(4.0, seed=3)


@pytest.fixture(scope="module")
def tiny():
    return random_encoder(load_config(["tiny"]).model, seed=0)


@pytest.mark.parametrize("compression", [1, 3])
def test_a_span_of_the_cqt_equals_the_same_frames_of_the_full_pass(compression):
    full = amplitude_to_db(compress_time(cqt(WAVE, log=False)[0], compression))
    T = full.shape[1]
    for start, stop in [(0, 5), (3, 40), (T // 2, T), (0, T), (T - 1, T)]:
        span = log_cqt_span(WAVE, start, stop, compression)
        assert span.shape == (84, stop - start)
        assert torch.allclose(span, full[:, start:stop], atol=1e-2), (start, stop)  # float rounding: < 0.001 dB seen


def test_chunked_frame_features_equal_one_full_pass(tiny):
    seconds, feats = frame_embeddings(WAVE, tiny, chunk=10, batch_size=3)  # 5 hops a chunk
    hop, F = default_hop(tiny), tiny.frames
    full = cqt(WAVE)[0]
    padded = torch.nn.functional.pad(full, (F // 2, F), value=FLOOR_DB)  # the floor past both ends
    centres = np.arange(0, full.shape[1], hop)[: len(seconds)]
    reference = tiny(torch.stack([padded[:, c : c + F] for c in centres])).numpy()
    assert feats.shape == (len(centres), tiny.num_features) and feats.dtype == np.float32
    np.testing.assert_allclose(feats, reference, atol=1e-5)
    # the same frames read from a prepared (84, T) log-CQT
    _, from_cqt = cqt_frame_embeddings(full.numpy(), tiny, chunk=8)
    np.testing.assert_allclose(from_cqt, feats, atol=1e-5)


def test_timestamps_start_at_zero_keep_one_hop_and_end_within_a_hop_of_the_end(tiny):
    for n in (1, 100, 23_594, 44_100):  # down to a single sample
        seconds, feats = frame_embeddings(np.zeros(n, np.float32), tiny)
        hop = default_hop(tiny) * 512 / 22050
        assert seconds[0] == 0 and len(seconds) == len(feats)
        np.testing.assert_allclose(np.diff(seconds), hop)
        assert n / 22050 - hop < seconds[-1] <= n / 22050
