import pytest
import torch

from s3t.config.schema import ModelConfig
from s3t.models.backbones import (
    ENCODERS,
    SAMPLES,
    build_encoder,
    has_batch_norm,
)
from s3t.models.swin import SWIN_PRESETS, check_swin_geometry
from s3t.transforms.preprocess import input_shape

SIZES = {"swin_t": 256, "swin_mini": 256, "swin_nano": 128, "swin_t_conv": 256}
NATIVE = {"swin_mini_native"}  # built for the native pre-processor's 96 × T input


def example_input(model: torch.nn.Module, cfg: ModelConfig) -> torch.Tensor:
    """Two inputs of the kind the encoder declares."""
    return torch.randn(2, 1, SAMPLES) if model.input_kind == "wave" else torch.randn(2, 1, *input_shape(cfg))


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_every_encoder_keeps_the_contract(name):
    torch.manual_seed(0)
    # no drop-path: with 2 samples a dropped residual branch would leave its block without gradient
    cfg = ModelConfig(name=name, input_size=SIZES.get(name, 128 if name not in NATIVE else 96), fold=1, drop_path=0.0,
                      preprocessor="native" if name in NATIVE else "time_fold")
    model = build_encoder(cfg)
    assert model.input_kind in ("spectrogram", "wave")
    x = example_input(model, cfg)
    if name in SWIN_PRESETS and SWIN_PRESETS[name].zero_init:
        # a residual branch that starts at zero passes no gradient behind its last projection until that moves
        model(x).pow(2).sum().backward()
        torch.optim.SGD(model.parameters(), lr=0.1).step()
        model.zero_grad()
    y = model(x)
    assert y.shape == (2, model.num_features)
    assert torch.isfinite(y).all()
    y.pow(2).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
    assert not missing, f"parameters without gradient: {missing[:5]}"


def test_swin_t_is_the_papers_size():
    model = build_encoder(ModelConfig(name="swin_t", input_size=256))
    assert model.num_features == 768
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(27.5e6, rel=0.01)


def test_geometry_errors_name_the_numbers():
    with pytest.raises(ValueError, match=r"stage 0 has a 50-token grid axis \(200 / patch 4 / 2\^0\), not a multiple of the window size 8"):
        check_swin_geometry(200, SWIN_PRESETS["swin_t"])
    with pytest.raises(ValueError, match="not a multiple of the patch size 4"):
        check_swin_geometry(258, SWIN_PRESETS["swin_t"])
    with pytest.raises(ValueError, match="unknown encoder 'vit'"):
        build_encoder(ModelConfig(name="vit"))
    model = build_encoder(ModelConfig(name="swin_nano", input_size=64, preprocessor="freq_tile"))
    with pytest.raises(ValueError, match=r"expected input \(B, 1, 64, 64\)"):
        model(torch.randn(1, 1, 64, 32))


def test_frozen_patch_embedding_gets_no_gradient():
    model = build_encoder(ModelConfig(name="swin_nano", input_size=64, preprocessor="freq_tile", drop_path=0.0, freeze_patch_embed=True))
    model(torch.randn(2, 1, 64, 64)).sum().backward()
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith("swin.patch_embed.") for n in frozen)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_rows_pooling_keeps_the_frequency_axis():
    torch.manual_seed(0)
    cfg = ModelConfig(name="swin_nano", input_size=64, preprocessor="freq_tile", drop_path=0.0)
    mean, rows = build_encoder(cfg), build_encoder(ModelConfig(**{**vars(cfg), "pooling": "rows"}))
    rows.load_state_dict(mean.state_dict())  # pooling adds no parameters
    x = torch.randn(3, 1, 64, 64)
    tokens = mean.swin.forward_features(x)  # (3, 2, 2, 192): 64 / 4 / 2^3 = 2 rows
    assert rows.num_features == 2 * mean.num_features
    assert torch.allclose(rows(x), tokens.mean(2).flatten(1))
    # averaging the rows back gives the paper's mean-pooled feature
    assert torch.allclose(rows(x).unflatten(1, (2, -1)).mean(1), mean(x), atol=1e-6)
    with pytest.raises(ValueError, match="model.pooling=rows is for Swin and ResNet encoders"):
        build_encoder(ModelConfig(name="crnn_small", pooling="rows"))
    stats = build_encoder(ModelConfig(**{**vars(cfg), "pooling": "rows_stats"}))
    stats.load_state_dict(mean.state_dict())
    assert stats.num_features == 4 * mean.num_features
    assert torch.allclose(stats(x), torch.cat([tokens.mean(2).flatten(1), tokens.std(2).flatten(1)], 1))
    with pytest.raises(ValueError, match="model.pooling must be one of mean, rows, rows_stats, stages; got 'max'"):
        ModelConfig(pooling="max")


def test_stages_pooling_concatenates_every_stages_mean_and_ends_with_the_papers_feature():
    torch.manual_seed(0)
    cfg = ModelConfig(name="swin_nano", input_size=64, preprocessor="freq_tile", drop_path=0.0)
    mean, stages = build_encoder(cfg), build_encoder(ModelConfig(**{**vars(cfg), "pooling": "stages"}))
    stages.load_state_dict(mean.state_dict())
    x = torch.randn(3, 1, 64, 64)
    out = stages(x)
    assert stages.num_features == 24 + 48 + 96 + 192 and out.shape == (3, 360)
    torch.testing.assert_close(out[:, -192:], mean(x))  # the last stage's part is the mean-pooled feature
    first = mean.swin.layers[0](mean.swin.patch_embed(x))  # (3, 16, 16, 24): stage 1's token grid
    torch.testing.assert_close(out[:, :24], first.mean((1, 2)))


def test_resnet_pools_rows_with_their_spread_and_every_stage_from_the_same_weights():
    torch.manual_seed(0)
    cfg = ModelConfig(name="resnet_small", input_size=64, preprocessor="freq_tile", drop_path=0.0)
    mean = build_encoder(cfg).eval()
    x = torch.randn(3, 1, 64, 64)
    fmap = mean.net.forward_features(x)  # (3, 256, 2, 2): 64 / 32 = 2 rows (frequency) by 2 columns (time)
    pooled = {}
    for pooling in ("rows", "rows_stats", "stages"):
        encoder = build_encoder(ModelConfig(**{**vars(cfg), "pooling": pooling})).eval()
        encoder.load_state_dict(mean.state_dict())  # pooling adds no parameters
        pooled[pooling] = encoder(x)
        assert pooled[pooling].shape == (3, encoder.num_features)
    torch.testing.assert_close(pooled["rows"], fmap.mean(3).flatten(1))
    torch.testing.assert_close(pooled["rows"].unflatten(1, (256, 2)).mean(2), mean(x))  # rows average back to mean
    torch.testing.assert_close(pooled["rows_stats"], torch.cat([fmap.mean(3).flatten(1), fmap.std(3).flatten(1)], 1))
    assert pooled["stages"].shape == (3, 32 + 64 + 128 + 256)
    torch.testing.assert_close(pooled["stages"][:, -256:], mean(x))  # the last stage's part is the mean feature
    net = mean.net
    first = net.layer1(net.maxpool(net.act1(net.bn1(net.conv1(x)))))
    torch.testing.assert_close(pooled["stages"][:, :32], first.mean((2, 3)))


def test_fused_attention_is_the_same_function_of_the_same_weights():
    from s3t.models.swin import fuse_attention

    torch.manual_seed(0)
    encoder = build_encoder(ModelConfig(name="swin_nano", input_size=64, preprocessor="freq_tile", drop_path=0.0)).eval()
    x = torch.randn(3, 1, 64, 64)
    with torch.no_grad():
        plain = encoder(x)
        assert fuse_attention(encoder) == 4  # one attention block per stage of swin_nano
        torch.testing.assert_close(encoder(x), plain, rtol=1e-4, atol=1e-5)


def test_swin_stems_keep_the_token_grid_and_the_patch_stem_is_the_papers():
    x = torch.randn(2, 1, 128, 128)
    for name in ("swin_mini", "swin_mini_conv", "swin_mini_hybrid"):
        model = build_encoder(ModelConfig(name=name, input_size=128, fold=1))
        tokens = model.swin.patch_embed(x)
        assert tokens.shape == (2, 16, 16, 48)  # NHWC at stride 8, as timm's stages take them
    # the patch stem is timm's own: swin_mini's parameter count is what it was before the stems came
    assert sum(p.numel() for p in build_encoder(ModelConfig(name="swin_mini")).parameters()) == 5_120_492
    # convolutional stems hold BatchNorm, so MoCo shuffles batches across them as for ResNets
    assert has_batch_norm(build_encoder(ModelConfig(name="swin_mini_conv", input_size=128, fold=1)))
    assert not has_batch_norm(build_encoder(ModelConfig(name="swin_mini", input_size=128, fold=1)))


def test_the_stride_32_hybrid_starts_as_resnet_small_with_an_identity_swin_stage():
    torch.manual_seed(0)
    model = build_encoder(ModelConfig(name="swin_hybrid32", pooling="rows"))
    tokens = model.swin.patch_embed(torch.randn(2, 1, 256, 256))
    assert tokens.shape == (2, 8, 8, 256)  # the whole resnet_small: stride 32, 256 channels
    torch.testing.assert_close(model.swin.layers(tokens), tokens)  # every block starts as the identity
    assert model.swin.layers[0].blocks[0].window_size == (8, 8)  # one window spans the map
    assert model.num_features == 8 * 256  # rows: as resnet_small's readout
    model.swin.layers(tokens).pow(2).sum().backward()
    assert model.swin.layers[0].blocks[1].mlp.fc2.weight.grad.abs().sum() > 0  # the zeros move on the first step


def test_the_native_swin_reads_96_rows_by_time_with_windows_inside_them():
    cfg = ModelConfig(name="swin_mini_native", preprocessor="native", input_size=768)
    assert input_shape(cfg) == (96, 768) and cfg.frames == 768
    model = build_encoder(cfg)
    assert model.swin.patch_embed(torch.randn(1, 1, 96, 768)).shape == (1, 12, 96, 64)
    with pytest.raises(ValueError, match=r"expected input \(B, 1, 96, 768\)"):
        model(torch.randn(1, 1, 256, 256))
    # on the square folded input its (6, 12) windows do not tile the 32 × 32 grid: a clear error
    with pytest.raises(ValueError, match="32-token grid axis .* not a multiple of the window size 6"):
        build_encoder(ModelConfig(name="swin_mini_native"))
