"""The one training loop: schedule, sampler, NaN policy, exact resume for every method, and a new
method added from outside the package, trained through the same engine, CLI and checkpoint path."""

import copy
import csv
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from audio_fixtures import write_labeled_music
from s3t.config.loading import load_config, presets
from s3t.config.schema import Config
from s3t.io.checkpoint import load_checkpoint
from s3t.methods.base import Method
from s3t.methods.moco import momentum_update
from s3t.methods.registry import METHODS, build_method, register_method
from s3t.models.backbones import build_encoder
from s3t.training.engine import TrainingError
from s3t.training.loader import EpochSampler
from s3t.training.schedule import warmup_cosine
from s3t.training.step import speed_up
from s3t.transforms.preprocess import model_input
from s3t.workflows.demo import CONFIGS as DEMO_CONFIGS
from s3t.workflows.pretrain import pretrain

TINY = Path(__file__).parent.parent / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def labeled(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("engine_labeled")
    for label in (0, 1):
        for k in range(8):
            write_labeled_music(root / f"class{label}" / f"t{k}.wav", label, seed=label * 10 + k)
    return root


def tiny(*overrides: str) -> Config:
    return load_config([TINY], list(overrides))


def test_warmup_cosine_schedule():
    assert warmup_cosine(0, 100, 10, 1.0) == 0.0 and warmup_cosine(1, 100, 10, 1.0) == pytest.approx(0.1)
    assert warmup_cosine(10, 100, 10, 1.0) == pytest.approx(1.0)  # the peak: warm-up ends, decay begins
    assert warmup_cosine(55, 100, 10, 1.0) == pytest.approx(0.5)
    assert warmup_cosine(100, 100, 10, 1.0, min_lr=0.1) == pytest.approx(0.1)
    assert warmup_cosine(2.5, 50, 5, 1.0) == pytest.approx(0.5)  # the probe's: per epoch, fractional
    values = [warmup_cosine(s, 100, 10, 1.0) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_epoch_sampler_shards_whole_global_batches():
    ranks = [EpochSampler(23, 4, r, 2, seed=0) for r in range(2)]
    for s in ranks:
        s.epoch = 3
    shares = [[i for e, i in s] for s in ranks]
    assert {e for s in ranks for e, _ in s} == {3}  # the epoch travels with each index
    assert [len(x) for x in shares] == [8, 8]  # 23 // 8 = 2 global batches of 2 × 4
    assert not set(shares[0]) & set(shares[1])
    again = EpochSampler(23, 4, 0, 2, seed=0)
    again.epoch = 3
    assert [i for _, i in again] == shares[0]
    again.start_batch = 1
    assert [i for _, i in again] == shares[0][4:] and len(again) == 4
    again.epoch = 4
    again.start_batch = 0
    assert [i for _, i in again] != shares[0]


def test_batches_travel_as_float16_and_arrive_as_float32():
    from s3t.training.loader import half_collate, to_device

    items = [(torch.randn(2, 84, 16) * 20 - 40, k) for k in range(3)]  # two crops in dB and a track id
    views, groups = half_collate(items)
    assert views.dtype == torch.float16 and groups.dtype == torch.int64
    arrived, ids = to_device((views, groups), torch.device("cpu"))
    exact = torch.stack([v for v, _ in items])
    assert arrived.dtype == torch.float32 and torch.equal(ids, torch.arange(3))
    assert (arrived - exact).abs().max() <= 0.0625 / 2  # half a float16 step at 64 dB


def test_nan_loss_stops_with_the_last_checkpoint_intact(cache, tmp_path):
    cfg = tiny("optim.lr=1e6", "optim.warmup_epochs=0", "train.checkpoint_steps=1", "optim.epochs=5")
    with pytest.raises(TrainingError, match="non-finite loss"):
        pretrain(cfg, cache, tmp_path, progress=False)
    state = load_checkpoint(tmp_path / "last.pt")
    assert all(torch.isfinite(v).all() for v in state["encoder"].values() if v.is_floating_point())


def test_nan_policy_skip_keeps_going(cache, tmp_path):
    cfg = tiny("optim.lr=1e6", "optim.warmup_epochs=0", "train.nan_policy=skip", "optim.epochs=3")
    pretrain(cfg, cache, tmp_path, progress=False)
    assert load_checkpoint(tmp_path / "last.pt")["progress"]["step"] == 6


def test_a_run_whose_checkpoints_cannot_fit_on_the_disk_is_refused_before_its_first_step(cache, tmp_path):
    with pytest.raises(TrainingError, match=r"needs [0-9.]+ GB for its checkpoints \(100000000 numbered, one every "
                                            r"train.checkpoint_every=1 epochs.* GB free: raise"):
        pretrain(tiny("optim.epochs=100000000", "train.checkpoint_every=1"), cache, tmp_path, progress=False)
    assert not (tmp_path / "last.pt").exists() and not (tmp_path / "log.csv").exists()
    # a run capped by train.max_steps needs only the checkpoints of the epochs it reaches
    pretrain(tiny("optim.epochs=100000000", "train.checkpoint_every=1", "train.max_steps=2"), cache, tmp_path,
             progress=False)
    assert load_checkpoint(tmp_path / "last.pt")["progress"]["step"] == 2


def test_compiled_training_keeps_checkpoint_keys_and_weights(cache, tmp_path):
    # the eager backend traces with dynamo and runs the same kernels: the weights must not move at all
    from torch._dynamo.utils import counters

    plain = load_checkpoint(pretrain(tiny("optim.epochs=1"), cache, tmp_path / "plain", progress=False))
    counters.clear()
    compiled = load_checkpoint(pretrain(tiny("optim.epochs=1", "train.compile=true", "train.compile_backend=eager"),
                                        cache, tmp_path / "compiled", progress=False))
    assert counters["stats"]["unique_graphs"] > 0  # it was compiled
    for part in ("encoder", "method_state"):
        assert compiled[part].keys() == plain[part].keys()
        for key, value in plain[part].items():
            assert torch.equal(compiled[part][key], value), key


@pytest.mark.parametrize("device, setting, compiled", [("cpu", "auto", False), ("cuda", "auto", True),
                                                         ("cpu", "true", True), ("cuda", "false", False)])
def test_compile_is_on_by_default_on_a_gpu_only(device, setting, compiled):
    # nn.Module.compile only wraps: nothing runs, so "cuda" can be named here without a GPU
    cfg = load_config([TINY], [f"train.compile={setting}"])
    method = build_method(cfg)
    speed_up(method, cfg, torch.device(device))
    assert all((child._compiled_call_impl is not None) == compiled for child in method.children())


def test_compile_setting_is_checked():
    assert load_config([TINY]).train.compile == "auto"
    with pytest.raises(ValueError, match="train.compile must be auto, true or false, got 'fast'"):
        load_config([TINY], ["train.compile=fast"])


def _command(kind: str, cache: Path, labeled: Path, out: Path) -> list[str]:
    """The CLI command of each method's training, small enough for a test; every one logs and
    checkpoints after each step, so that a kill lands between checkpoints of a running epoch."""
    common = ["--out", str(out), "--no-progress"]
    each_step = ["train.checkpoint_steps=1", "train.workers=0", "train.log_every=1"]
    if kind == "pretrain":
        return ["pretrain", "--data", str(cache), "--config", str(TINY), *common, "--set", "optim.epochs=4", *each_step]
    if kind == "clmr":
        return ["clmr", "--data", str(cache), *common, "--set", "model.name=samplecnn_small", "train.batch_size=4",
                "optim.epochs=3", *each_step]
    return ["supervised", "--dataset", "folder", "--root", str(labeled), "--cache", str(out.parent / "sup-cache"),
            "--workers", "0", "--config", "tiny", *common, "--set", "model.name=crnn_small", "train.batch_size=4",
            "optim.epochs=3", "probe.epochs=1", *each_step]


@pytest.mark.parametrize("kind", ["pretrain", "clmr", "supervised"])
def test_sigkill_then_resume_reaches_the_uninterrupted_weights(kind, cache, labeled, tmp_path):
    s3t = [sys.executable, "-m", "s3t"]
    ref = subprocess.run(s3t + _command(kind, cache, labeled, tmp_path / "ref"), capture_output=True, text=True,
                         timeout=300)
    assert ref.returncode == 0, ref.stderr[-3000:]
    reference = load_checkpoint(tmp_path / "ref" / "last.pt")
    run = tmp_path / "killed"
    cmd = s3t + _command(kind, cache, labeled, run)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "epoch0002.pt").exists():
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(run / "last.pt")["progress"]["step"]
    assert 0 < killed_at < reference["progress"]["step"], "the kill should land mid-run"
    resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = load_checkpoint(run / "last.pt")
    progress = {k: v for k, v in final["progress"].items() if k != "elapsed"}
    assert progress == {k: v for k, v in reference["progress"].items() if k != "elapsed"}
    assert final["method"] == reference["method"]
    for part in ("encoder", "method_state"):
        assert final[part].keys() == reference[part].keys()
        for key, value in reference[part].items():
            assert torch.equal(final[part][key], value), (part, key)
    for a, b in zip(final["optimizer"]["state"].values(), reference["optimizer"]["state"].values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"])
    rows = list(csv.DictReader(open(run / "log.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, reference["progress"]["step"] + 1))  # none lost or twice


class Bootstrap(Method):
    """A BYOL-style method written outside the package: an online encoder and predictor regress a
    momentum target's embedding of the other view (no augmentation: the two crops are the views)."""

    name = "byol_test"
    stat_names = ("cosine",)

    def __init__(self, cfg: Config):
        super().__init__()
        self.model_cfg = cfg.model
        self.encoder = build_encoder(cfg.model)
        self.predictor = torch.nn.Linear(self.encoder.num_features, self.encoder.num_features)
        self.target = copy.deepcopy(self.encoder).requires_grad_(False)

    def forward(self, batch, gen):
        views, _ = batch
        x = model_input(views.flatten(0, 1), self.model_cfg).unflatten(0, (len(views), 2))
        with torch.no_grad():
            target = self.target(x[:, 1])
        cosine = F.cosine_similarity(self.predictor(self.encoder(x[:, 0])), target).mean()
        return 2 - 2 * cosine, {"cosine": float(cosine.detach())}

    def after_step(self):
        momentum_update(self.target, self.encoder, 0.9)


def test_a_method_registered_from_outside_trains_through_the_engine_cli_and_checkpoints(cache, tmp_path,
                                                                                       monkeypatch, capsys):
    from s3t.cli import main
    from s3t.data.cache import open_cache
    from s3t.inference.features import extract_features
    from s3t.inference.load import load_encoder

    monkeypatch.setitem(METHODS, "byol_test", None)  # removed again after the test
    register_method("byol_test")(Bootstrap)
    args = ["pretrain", "--data", str(cache), "--out", str(tmp_path), "--config", str(TINY), "--no-progress",
            "--set", "train.method=byol_test", "optim.epochs=2"]
    assert main(args) == 0
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert len(rows) == 4 and all(-1 <= float(r["cosine"]) <= 1 and math.isfinite(float(r["loss"])) for r in rows)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["method"] == "byol_test" and ckpt["progress"]["step"] == 4
    assert any(k.startswith("target.") for k in ckpt["method_state"]) and "predictor.weight" in ckpt["method_state"]
    # the encoder is read back with no knowledge of the method
    encoder = load_encoder(tmp_path / "last.pt")
    for name, value in encoder.backbone.state_dict().items():
        assert torch.equal(value, ckpt["encoder"][name])
    assert np.isfinite(extract_features(open_cache(cache), encoder, [0, 1], progress=False)).all()
    # and it resumes: the run's own config comes back from last.pt, two more epochs on top
    assert main(["pretrain", "--data", str(cache), "--out", str(tmp_path), "--no-progress", "--resume",
                 "--set", "optim.epochs=3"]) == 0
    progress = load_checkpoint(tmp_path / "last.pt")["progress"]
    assert progress == {"step": 6, "epoch": 3, "best": -math.inf, "elapsed": progress["elapsed"]}
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert len(rows) == 6
    # the clock goes on across the resume: training time is the run's, not the last process's
    elapsed = [float(r["elapsed_s"]) for r in rows]
    assert elapsed == sorted(elapsed) and progress["elapsed"] >= elapsed[-1] > 0


def test_an_unknown_method_is_an_error_naming_the_choices(cache, tmp_path):
    with pytest.raises(ValueError, match=r"train.method: unknown method 'byol'; available: \[.*'moco'.*'simclr'"):
        pretrain(tiny("train.method=byol"), cache, tmp_path, progress=False)


@pytest.mark.parametrize("preset", presets())
def test_every_shipped_preset_trains_one_real_step(preset, cache, tmp_path):
    """The preset's model, method and pipeline as shipped; only the batch, queue and run length shrink."""
    presets_as_shipped = list(DEMO_CONFIGS) if preset == "demo" else [preset]  # `demo` is an overlay on cpu-small
    cfg = load_config(presets_as_shipped, ["train.batch_size=2", "moco.queue_size=4", "train.workers=0", "optim.epochs=1",
                                 "train.max_steps=1"])
    last = pretrain(cfg, cache, tmp_path, progress=False)
    state = load_checkpoint(last)
    model = load_config(presets_as_shipped).model
    assert state["progress"]["step"] == 1
    assert (state["config"]["model"]["name"], state["config"]["model"]["input_size"]) == (model.name, model.input_size)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert len(rows) == 1 and math.isfinite(float(rows[0]["loss"]))
