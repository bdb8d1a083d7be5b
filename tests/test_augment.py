import dataclasses

import pytest
import torch

from s3t.audio.constant_q import FLOOR_DB
from s3t.config.schema import AugmentConfig
from s3t.transforms import augment

CFG = AugmentConfig()
B, F, T = 2000, 84, 384


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def only(**probs) -> AugmentConfig:
    """The default config with every probability 0 except those given."""
    zero = {f.name: 0.0 for f in dataclasses.fields(AugmentConfig) if f.name.endswith("_p")}
    return AugmentConfig(**{**zero, **probs})


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(B, F, T, generator=gen(123))  # never equal to the floor


def runs(mask: torch.Tensor) -> list[int]:
    """Lengths of the runs of True in a 1-D bool tensor."""
    lengths, n = [], 0
    for v in mask.tolist() + [False]:
        if v:
            n += 1
        elif n:
            lengths.append(n)
            n = 0
    return lengths


# --- multi-crop -------------------------------------------------------------------------------


def test_crop_windows_lengths_and_positions():
    g = gen()
    for total in (10, 1292, 5000):
        for _ in range(200):
            windows = augment.sample_crop_windows(total, CFG.crop_ratio, 2, g)
            assert len(windows) == 2
            for start, length in windows:
                assert round(0.1 * total) <= length <= round(0.9 * total)
                assert 0 <= start and start + length <= total


def test_crop_ratio_is_uniform():
    g = gen(1)
    lengths = torch.tensor([n for _ in range(2000) for _, n in augment.sample_crop_windows(10000, (0.1, 0.9), 2, g)])
    r = lengths.float() / 10000
    assert abs(r.mean().item() - 0.5) < 0.01
    assert abs(r.std().item() - 0.8 / 12**0.5) < 0.01  # uniform on [0.1, 0.9]


def test_resize_time_is_identity_at_same_length_and_linear():
    x = torch.randn(3, 84, 50)
    torch.testing.assert_close(augment.resize_time(x, 50), x)
    ramp = torch.arange(10.0).view(1, 1, 10)
    up = augment.resize_time(ramp, 20)[0, 0]
    assert torch.all(up[1:] >= up[:-1]) and up[0] == 0 and up[-1] == 9


# --- masking ----------------------------------------------------------------------------------


@pytest.mark.parametrize("length, n_frames", [(5, 768), (769, 768), (1292, 768), (10336, 768), (9000, 256)])
def test_resized_crop_reads_only_the_frames_it_needs_and_equals_resize_time(length, n_frames):
    gen = torch.Generator().manual_seed(length)
    source = (torch.randn(84, length + 40, generator=gen) * 20 - 40).half().numpy()  # float16, as cached
    reads = []

    def read(positions):
        reads.append(positions)
        return source[:, positions]

    got = augment.resized_crop(read, 17, length, n_frames)
    want = augment.resize_time(torch.from_numpy(source[:, 17 : 17 + length].astype("float32")), n_frames)
    assert got.shape == (84, n_frames)
    # float32 rounding of the weights only: a tenth of float16's spacing at these levels (0.03-0.06 dB)
    assert (got - want).abs().max() < 5e-3
    assert sum(map(len, reads)) <= min(length, 2 * n_frames)
    assert all(r.min() >= 17 and r.max() < 17 + length for r in reads)


def test_freq_mask_bands(x):
    out = augment.freq_mask(x, CFG, gen())
    masked = out == FLOOR_DB
    assert torch.equal(out[~masked], x[~masked])  # unmasked cells untouched
    rows = masked.all(2)
    assert torch.equal(rows, masked.any(2))  # a masked bin is masked at every frame
    totals = rows.sum(1)
    assert totals.max() <= int(0.4 * F)
    applied = totals > 0
    assert abs(applied.float().mean().item() - 0.5) < 0.04
    for i in torch.nonzero(applied)[:300, 0]:
        bands = runs(rows[i])
        assert 1 <= len(bands) <= 5 and min(bands) >= 5  # merged bands are longer, never shorter


def test_time_mask_segments(x):
    out = augment.time_mask(x, CFG, gen(1))
    masked = out == FLOOR_DB
    cols = masked.all(1)
    assert torch.equal(cols, masked.any(1))  # a masked frame is masked at every bin
    assert cols.sum(1).max() <= int(0.4 * T)
    applied = cols.any(1)
    assert abs(applied.float().mean().item() - 0.5) < 0.04
    for i in torch.nonzero(applied)[:300, 0]:
        segments = runs(cols[i])
        assert 1 <= len(segments) <= 10 and min(segments) >= round(0.01 * T)
    # segment lengths reach towards 0.2·T
    assert max(max(runs(cols[i])) for i in torch.nonzero(applied)[:300, 0]) >= 0.15 * T


def test_mask_totals_hold_when_every_band_is_wide():
    cfg = AugmentConfig(freq_mask_p=1.0, freq_mask_count=(5, 5), freq_mask_width=(30, 30))
    out = augment.freq_mask(torch.zeros(500, F, 16), cfg, gen())
    per_item = (out == FLOOR_DB).all(2).sum(1)
    assert per_item.max() <= 33 and per_item.min() >= 30  # one band always fits, a second never


# --- warp -------------------------------------------------------------------------------------


def test_time_warp_keeps_ends_and_values_in_range(x):
    out = augment.time_warp(x, CFG, gen(2))
    changed = (out != x).flatten(1).any(1)
    assert abs(changed.float().mean().item() - 0.4) < 0.04
    assert torch.equal(out[..., 0], x[..., 0]) and torch.equal(out[..., -1], x[..., -1])
    # linear interpolation between neighbouring frames: each output lies between two inputs
    lo = torch.minimum(x[..., :-1], x[..., 1:]).amin(-1)
    hi = torch.maximum(x[..., :-1], x[..., 1:]).amax(-1)
    assert torch.all(out.amin(-1) >= lo - 1e-5) and torch.all(out.amax(-1) <= hi + 1e-5)


def test_time_warp_moves_the_point_by_at_most_w():
    ramp = torch.arange(T, dtype=torch.float32).expand(500, F, T).contiguous()
    out = augment.time_warp(ramp, only(warp_p=1.0), gen(3))
    # on a ramp the warp is visible as the displacement of each output frame's source
    displacement = (out[:, 0, :] - torch.arange(T)).abs()
    assert displacement.max() <= 10 + 1e-3
    assert displacement.amax(1).mean() > 3  # it does move
    assert torch.all(out[:, 0, 1:] >= out[:, 0, :-1])  # monotone: no folding over


# --- shift ------------------------------------------------------------------------------------


def _is_shift_of(out: torch.Tensor, x: torch.Tensor) -> tuple[str, int] | None:
    for s in list(range(1, 11)) + list(range(-10, 0)):
        f = torch.full_like(x, FLOOR_DB)
        if s > 0:
            f[s:] = x[:-s]
        else:
            f[:s] = x[-s:]
        if torch.equal(out, f):
            return "pitch", s
        t = torch.full_like(x, FLOOR_DB)
        if s > 0:
            t[:, s:] = x[:, :-s]
        else:
            t[:, :s] = x[:, -s:]
        if torch.equal(out, t):
            return "time", s
    return None


def test_shift_is_an_exact_shift_with_floor_fill(x):
    out = augment.shift(x[:600], CFG, gen(4))
    kinds = {"pitch": 0, "time": 0}
    amounts = set()
    n_applied = 0
    for i in range(600):
        if torch.equal(out[i], x[i]):
            continue
        found = _is_shift_of(out[i], x[i])
        assert found is not None, f"item {i} is not a 1..10 shift along one axis"
        kinds[found[0]] += 1
        amounts.add(found[1])
        n_applied += 1
    assert abs(n_applied / 600 - 0.4) < 0.06
    assert kinds["pitch"] > 60 and kinds["time"] > 60
    assert amounts == set(range(-10, 0)) | set(range(1, 11))


# --- pipeline ---------------------------------------------------------------------------------


def test_identity_when_every_p_is_zero(x):
    out = augment.augment_batch(x[:200], only(), gen())
    assert torch.equal(out, x[:200])


def test_seeded_generator_reproduces_and_views_differ(x):
    views = x[:64].view(32, 2, F, T)
    a = augment.augment_views(views, CFG, gen(7))
    b = augment.augment_views(views, CFG, gen(7))
    assert a.shape == (32, 2, F, T) and torch.equal(a, b)
    c = augment.augment_views(views, CFG, gen(8))
    assert not torch.equal(a, c)


def test_pipeline_output_is_finite_and_bounded(x):
    out = augment.augment_batch(x[:500], CFG, gen(9))
    assert out.shape == (500, F, T) and torch.isfinite(out).all()
    assert out.min() >= FLOOR_DB and out.max() <= x[:500].max()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pipeline_runs_on_gpu_like_on_cpu(x):
    g = torch.Generator(device="cuda").manual_seed(0)
    out = augment.augment_batch(x[:64].cuda(), CFG, g)
    assert out.device.type == "cuda" and out.shape == (64, F, T)
    out_id = augment.augment_batch(x[:64].cuda(), only(), g)
    assert torch.equal(out_id.cpu(), x[:64])


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="freq_mask_p"):
        AugmentConfig(freq_mask_p=1.5)
    with pytest.raises(ValueError, match="crop_ratio"):
        AugmentConfig(crop_ratio=(0.9, 0.1))
    assert AugmentConfig(crop_ratio=[0.2, 0.3]).crop_ratio == (0.2, 0.3)
