from pathlib import Path

import pytest
import yaml

from s3t.config.loading import (
    ConfigError,
    load_config,
    parse_override,
    presets,
    save_config,
)
from s3t.config.schema import Config

CONFIGS = Path(__file__).parent.parent / "configs"


def test_defaults_are_the_papers_numbers():
    cfg = Config()
    assert (cfg.model.name, cfg.model.input_size, cfg.model.preprocessor, cfg.model.drop_path) == \
        ("swin_t", 256, "time_fold", 0.1)
    assert (cfg.moco.queue_size, cfg.moco.momentum, cfg.moco.temperature, cfg.moco.dim) == (65536, 0.999, 0.2, 128)
    assert (cfg.optim.lr, cfg.optim.lr_batch, cfg.optim.weight_decay, cfg.optim.epochs,
            cfg.optim.warmup_epochs) == (5e-4, 512, 0.05, 400, 20)
    assert cfg.train.batch_size == 128
    paper_train = Config().train.__class__(workers=8, checkpoint_every=20)
    assert load_config([CONFIGS / "paper.yaml"]) == Config(train=paper_train)


def test_layering_files_then_overrides(tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text("optim: {lr: 0.01, epochs: 5}\nmodel: {name: swin_mini}\n")
    b = tmp_path / "b.yaml"
    b.write_text("optim: {epochs: 7}\n")
    cfg = load_config([a, b], ["optim.lr=1e-3", "augment.crop_ratio=[0.2, 0.5]", "train.amp=false"])
    assert cfg.optim.epochs == 7 and cfg.optim.lr == 1e-3 and cfg.model.name == "swin_mini"
    assert cfg.augment.crop_ratio == (0.2, 0.5) and cfg.train.amp is False
    assert load_config(overrides=["optim.warmup_epochs=3"]).optim.warmup_epochs == 3.0  # int for float


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=1", "unknown key optim.lrr"),
    ("optimizer.lr=1", "unknown section 'optimizer'"),
    ("optim.lr=fast", "optim.lr: expected float"),
    ("train.batch_size=1.5", "train.batch_size: expected int"),
    ("train.amp=1", "train.amp: expected bool"),
    ("augment.crop_ratio=[0.1]", "expected a list of 2"),
    ("augment.shift_p=2", "shift_p is a probability"),
    ("train.checkpoint_every=0", "checkpoint_every is epochs between numbered checkpoints"),
    ("lr=1", "expected section.key=value"),
    ("train.device=gpu", "train.device: unknown device 'gpu'; expected auto, cpu, cuda or cuda:N"),
    ("train.device=cuda0", "train.device: unknown device 'cuda0'"),
    ("train.nan_policy=ignore", "train.nan_policy must be one of stop, skip"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[override])


def test_bad_files_fail_clearly(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("moco:\n  queue: 10\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key moco.queue"):
        load_config([bad])
    tagged = tmp_path / "tag.yaml"
    tagged.write_text("model: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="cannot read the config"):
        load_config([tagged])
    with pytest.raises(ConfigError, match="cannot read"):
        load_config([tmp_path / "missing.yaml"])


def test_saved_config_round_trips(tmp_path):
    cfg = load_config([CONFIGS / "cpu-small.yaml"], ["augment.crop_ratio=[0.3, 0.6]"])
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config([tmp_path / "c.yaml"]) == cfg
    assert load_config(base=cfg.to_dict()) == cfg
    assert yaml.safe_load((tmp_path / "c.yaml").read_text())["augment"]["crop_ratio"] == [0.3, 0.6]


@pytest.mark.parametrize("name", presets())
def test_presets_load(name):
    load_config([CONFIGS / f"{name}.yaml"])


def test_a_folder_named_like_a_preset_does_not_hide_it(tmp_path, monkeypatch):
    (tmp_path / "demo").mkdir()  # what `s3t demo` writes to by default, in the folder it runs from
    monkeypatch.chdir(tmp_path)
    assert load_config(["cpu-small", "demo"]).model.frames == 384


def test_parse_override_reads_yaml_scalars():
    assert parse_override("optim.lr=5e-4") == {"optim": {"lr": 5e-4}}
    assert parse_override("model.name=swin_t") == {"model": {"name": "swin_t"}}
