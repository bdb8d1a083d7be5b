import pytest
import torch

from s3t.audio.constant_q import FLOOR_DB
from s3t.config.schema import input_frames
from s3t.transforms.preprocess import (
    fold_time,
    pad_frequency,
    tile_frequency,
    to_model_input,
)


def test_fold_time_layout_on_arange():
    F, T, n = 4, 6, 3
    x = torch.arange(F * T).view(F, T)  # x[f, t] = f·T + t
    y = fold_time(x, n)
    assert y.shape == (F * n, T // n)
    for k in range(n):  # segment k occupies rows k·F … (k+1)·F − 1
        assert torch.equal(y[k * F : (k + 1) * F], x[:, k * (T // n) : (k + 1) * (T // n)])


def test_fold_time_batched_paper_shape():
    x = torch.randn(2, 84, 768)
    y = fold_time(x, 3)
    assert y.shape == (2, 252, 256)
    assert torch.equal(y[1, 84:168], x[1, :, 256:512])
    with pytest.raises(ValueError, match="768 frames do not split into 5"):
        fold_time(x, 5)


def test_tile_frequency_layout_on_arange():
    F, T = 3, 5
    x = torch.arange(F * T).view(F, T)
    y = tile_frequency(x, 3, 7)
    assert y.shape == (7, T)
    for row in range(7):
        assert torch.equal(y[row], x[row % F])
    assert tile_frequency(torch.randn(84, 256), 4, 256).shape == (256, 256)
    with pytest.raises(ValueError, match="fewer than 256"):
        tile_frequency(torch.randn(84, 256), 3, 256)


def test_pad_frequency_fills_the_top_with_the_floor():
    x = torch.randn(2, 252, 256)
    y = pad_frequency(x, 256)
    assert y.shape == (2, 256, 256)
    assert torch.equal(y[:, :252], x) and torch.all(y[:, 252:] == FLOOR_DB)


@pytest.mark.parametrize("pre, frames", [("time_fold", 768), ("freq_tile", 256)])
def test_to_model_input(pre, frames):
    assert input_frames(pre) == frames
    x = torch.randn(3, 84, frames)
    y = to_model_input(x, pre)
    assert y.shape == (3, 1, 256, 256)
    with pytest.raises(ValueError, match=f"give it {frames} frames"):
        to_model_input(torch.randn(3, 84, frames // 2 * 2 + (6 if pre == "time_fold" else 2)), pre)
    with pytest.raises(ValueError, match="unknown pre-processor"):
        to_model_input(x, "fold")


def test_native_input_is_the_cqt_padded_to_96_rows_with_the_floor():
    x = torch.randn(2, 84, 40)
    y = to_model_input(x, "native", size=40)
    assert y.shape == (2, 1, 96, 40)
    assert torch.equal(y[:, 0, :84], x) and (y[:, 0, 84:] == FLOOR_DB).all()
    with pytest.raises(ValueError, match="native input takes 40 frames, got 41"):
        to_model_input(torch.randn(2, 84, 41), "native", size=40)
    assert input_frames("native", 40) == 40


def test_any_width_keeps_a_short_clip_at_its_own_width_folded_into_whole_segments():
    x = torch.arange(84 * 50, dtype=torch.float32).reshape(1, 84, 50)  # 50 frames: one floor frame makes 3 × 17
    y = to_model_input(x, "time_fold", any_width=True)[0, 0]
    assert y.shape == (256, 17)
    for k in range(3):  # segment k: frames 17k … 17k + 16, in rows 84k …
        assert torch.equal(y[84 * k : 84 * k + 84, : 17 if k < 2 else 16], x[0, :, 17 * k : 17 * k + 17])
    assert (y[-84:, 16] == FLOOR_DB)[:84 - 4].all() and (y[252:] == FLOOR_DB).all()
    assert to_model_input(x, "native", size=768, any_width=True).shape == (1, 1, 96, 50)
