"""Encoders as feature extractors: seeded random weights, the cqt-stats reference, the embedding
setting (one resize or windows) carried by the config and the fingerprint."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from s3t.config.loading import load_config
from s3t.inference.encoders import CqtStatsEncoder, Encoder, random_encoder
from s3t.inference.features import embed_clips
from s3t.transforms.preprocess import model_input

TINY = str(Path(__file__).parent.parent / "configs" / "tiny.yaml")


def test_random_encoder_is_seeded():
    cfg = load_config([TINY]).model
    a, b, c = random_encoder(cfg, seed=0), random_encoder(cfg, seed=0), random_encoder(cfg, seed=1)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_cqt_stats_is_the_per_bin_mean_and_std_of_each_clip():
    rng = np.random.default_rng(0)
    clips = [rng.normal(-40, 10, (84, n)).astype(np.float32) for n in (50, 300)]  # lengths differ
    feats = extract_features_of(CqtStatsEncoder(), clips)
    for clip, f in zip(clips, feats):
        assert f.shape == (168,)
        np.testing.assert_allclose(f, np.concatenate([clip.mean(1), clip.std(1)]), rtol=1e-5, atol=1e-4)


def extract_features_of(encoder, clips):
    from s3t.inference.features import embed_clips

    return np.stack(list(embed_clips(encoder, clips, None, batch_size=8)))


def test_embedding_setting_comes_from_the_config():
    cfg = load_config([TINY])  # 128 input frames
    resize = random_encoder(cfg.model)
    windows = random_encoder(load_config([TINY], ["model.embedding=windows"]).model)
    clip = torch.randn(84, 320)
    assert resize.inputs_of(clip).shape == (1, 84, 128)
    assert windows.inputs_of(clip).shape == (4, 84, 128)  # starts 0, 64, 128, 192
    assert torch.equal(windows.inputs_of(clip)[1], clip[:, 64:192])
    assert windows.inputs_of(clip, windows=False).shape == (1, 84, 128)  # an explicit choice wins
    assert resize.fingerprint() != windows.fingerprint()  # feature files never mix the two


def test_readout_reads_the_weights_the_pretext_trained_on_the_mean_by_frequency_rows():
    from s3t.models.backbones import build_encoder

    trained = load_config([TINY], ["model.name=resnet_small", "model.readout=rows"]).model
    assert build_encoder(trained).num_features == 256  # what the pretext trains: the mean, as pooling says
    read, mean = random_encoder(trained, seed=3), random_encoder(replace(trained, readout=""), seed=3)
    assert read.num_features == 256 * mean.model_cfg.input_size // 32  # one 256-d vector per frequency row
    x = torch.randn(2, 1, trained.input_size, trained.input_size)
    fmap = mean.backbone.net.forward_features(x)  # the same seeded weights, read two ways
    torch.testing.assert_close(read.backbone(x), fmap.mean(3).flatten(1))
    assert read.fingerprint() != mean.fingerprint()  # feature files never mix the two readouts
    assert not any(p.requires_grad for p in read.parameters())


def test_trained_weights_can_be_read_out_another_way_but_not_rebuilt():
    from s3t.config.loading import ConfigError
    from s3t.inference.load import encoder_of

    cfg = load_config([TINY], ["model.name=resnet_small"])
    weights = random_encoder(cfg.model, seed=0).backbone.state_dict()  # as a checkpoint holds them
    as_trained = encoder_of(cfg.to_dict(), weights, {}, "ckpt")
    read = encoder_of(cfg.to_dict(), weights, {}, "ckpt", readout=["model.readout=rows", "model.embedding=windows"])
    assert (as_trained.num_features, as_trained.uses_windows()) == (256, False)
    assert (read.num_features, read.uses_windows()) == (256 * 4, True)  # 128 / 32 = 4 frequency rows
    x = torch.randn(1, 1, 128, 128)
    torch.testing.assert_close(read.backbone(x).unflatten(1, (256, 4)).mean(2), as_trained.backbone(x))
    with pytest.raises(ConfigError, match="--set model.name=resnet18: .* only model.readout, model.embedding, model.short"):
        encoder_of(cfg.to_dict(), weights, {}, "ckpt", readout=["model.name=resnet18"])


def test_a_short_clip_is_resized_padded_with_the_floor_or_looped_as_model_short_says():
    clip = torch.arange(84 * 50, dtype=torch.float32).reshape(84, 50) / 100 - 40  # 50 frames of 128
    reads = {how: random_encoder(load_config(["tiny"], [f"model.short={how}"]).model).inputs_of(clip)[0]
             for how in ("resize", "pad", "loop")}
    assert all(r.shape == (84, 128) for r in reads.values())
    assert torch.equal(reads["pad"][:, :50], clip) and (reads["pad"][:, 50:] == -100).all()
    assert torch.equal(reads["loop"][:, :50], clip) and torch.equal(reads["loop"][:, 100:], clip[:, :28])
    assert not torch.equal(reads["resize"][:, :50], clip)  # stretched 2.56×
    long = torch.zeros(84, 300)  # longer than the input: `short` plays no part
    assert torch.equal(random_encoder(load_config(["tiny"], ["model.short=pad"]).model).inputs_of(long),
                       random_encoder(load_config(["tiny"]).model).inputs_of(long))


def _short_reader(how: str, pooling: str = "mean") -> Encoder:
    """cpu-small's geometry (768 frames folded to 256 × 256) on a random resnet_small, reading short clips `how`."""
    return random_encoder(load_config([], ["model.name=resnet_small", f"model.pooling={pooling}",
                                           f"model.short={how}"]).model)


def test_valid_pools_only_the_map_cells_a_short_clip_covers():
    clip = torch.randn(84, 40) * 10 - 40  # 40 of 768 frames: segment 0 of the fold, rows 0–83, columns 0–39
    padded = _short_reader("pad").inputs_of(clip)
    for pooling in ("mean", "rows", "rows_stats"):
        reader = _short_reader("valid", pooling)
        crops = reader.inputs_of(clip)
        assert crops.shape == (1, 84, 768) and crops[:, :, 40:].isnan().all()
        assert torch.equal(crops[:, :, :40], padded[:, :, :40])
        fmap = reader.backbone.net.forward_features(model_input(padded, reader.model_cfg))  # (1, 256, 8, 8): stride 32
        cells = fmap[:, :, :3, :2]  # rows 0–2 cover bins 0–95 of segment 0, columns 0–1 frames 0–63
        rows = torch.nn.functional.pad(cells.mean(3), (0, 5))  # rows 3–7 (segments 1, 2) hold none of the clip: 0
        expected = {"mean": cells.mean((2, 3)), "rows": rows.flatten(1),
                    "rows_stats": torch.cat([rows.flatten(1), torch.nn.functional.pad(cells.std(3), (0, 5)).flatten(1)],
                                            1)}[pooling]
        torch.testing.assert_close(reader(crops), expected)
    assert not torch.allclose(_short_reader("valid")(crops), _short_reader("pad")(padded))


def test_valid_pooling_of_a_clip_with_no_padding_is_the_backbones_own():
    x = torch.randn(2, 1, 128, 128)
    for name in ("resnet_small", "swin_nano"):
        for pooling in ("mean", "rows", "rows_stats"):
            cfg = load_config(["tiny"], [f"model.name={name}", f"model.pooling={pooling}"])
            backbone = random_encoder(cfg.model).backbone
            torch.testing.assert_close(backbone(x, valid=torch.ones_like(x, dtype=torch.bool)), backbone(x))


def test_native_reads_a_short_clip_at_its_own_width_and_a_batch_of_widths_each_alone():
    reader = _short_reader("native")
    clips = [torch.randn(84, t) * 10 - 40 for t in (40, 100, 40, 900)]
    assert [tuple(reader.inputs_of(c).shape) for c in clips[:2]] == [(1, 84, 40), (1, 84, 100)]
    together = np.stack(list(embed_clips(reader, clips, windows=None, batch_size=8)))
    alone = np.stack([reader(reader.inputs_of(c)).mean(0).numpy() for c in clips])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    width = model_input(clips[0][None], reader.model_cfg, any_width=True).shape[-1]
    assert width == 14  # 40 frames and 2 of the floor, in 3 segments
    with pytest.raises(ValueError, match="model.short=native needs an encoder that takes any input width"):
        random_encoder(load_config(["tiny"], ["model.short=native"]).model)
    with pytest.raises(ValueError, match="model.short=valid pools the valid cells"):
        random_encoder(load_config(["tiny"], ["model.name=crnn_small", "model.short=valid"]).model)
