"""Checkpoints: atomic, safe to load, damage detected, one schema for every method (older ones upgraded)."""

import os

import pytest
import torch

from s3t.config.loading import load_config
from s3t.io.checkpoint import (
    FORMAT,
    SCHEMA,
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from s3t.methods.registry import build_method


def test_checkpoints_are_atomic_and_load_safely(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(2)}, "config": {}})
    assert not list(tmp_path.glob("*.tmp*"))
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(path)

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    torch.save({"model": Payload(), "config": {}}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_a_flipped_bit_in_a_checkpoint_is_detected(tmp_path):
    path = tmp_path / "c.pt"
    state = {"model": {"w": torch.randn(500, 500), "step": torch.tensor(3)}, "config": {"a": [1, 2.5]}, "step": 7}
    save_checkpoint(path, state)
    loaded = read_checkpoint(path)
    assert torch.equal(loaded["model"]["w"], state["model"]["w"]) and "crc32" not in loaded
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10  # inside the tensor's bytes: torch.load alone would not notice
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        read_checkpoint(path)


def _moco_state():
    cfg = load_config(["tiny"])
    torch.manual_seed(0)
    method = build_method(cfg)
    opt = torch.optim.AdamW(method.parameters())
    return method, cfg, opt


def test_every_training_checkpoint_has_the_documented_schema(tmp_path):
    from s3t.io.checkpoint import training_state

    method, cfg, opt = _moco_state()
    state = training_state(method, opt, cfg, {"step": 3, "epoch": 1, "best": 0.5}, {"time_compression": 1}, {})
    assert set(state) == set(SCHEMA) and state["format"] == FORMAT and state["method"] == "moco"
    assert set(state["encoder"]) == set(method.encoder.state_dict())  # unprefixed
    assert not any(k.startswith("encoder.") for k in state["method_state"]) and "queue" in state["method_state"]
    save_checkpoint(tmp_path / "last.pt", state)
    assert load_checkpoint(tmp_path / "last.pt")["progress"] == {"step": 3, "epoch": 1, "best": 0.5}
    # a file that lacks a part, or has one of the wrong type, is refused with the key named
    for broken, message in (({k: v for k, v in state.items() if k != "encoder"}, "'encoder' missing"),
                            ({**state, "progress": [3, 1]}, "'progress' is a list, not a dict"),
                            ({**state, "format": FORMAT + 1}, f"format {FORMAT + 1} is newer")):
        save_checkpoint(tmp_path / "bad.pt", broken)
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(tmp_path / "bad.pt")


def test_a_checkpoint_from_before_the_schema_still_loads_and_resumes(tmp_path):
    """Format 0 (up to 0.1.0): MoCo's whole state under `model`, the query encoder prefixed `encoder_q.`."""
    from s3t.inference.load import load_encoder
    from s3t.io.checkpoint import restore_method

    method, cfg, opt = _moco_state()
    old = {f"encoder_q.{k}" if k.startswith("encoder.") else k: v for k, v in method.state_dict().items()}
    old = {k.replace("encoder_q.encoder.", "encoder_q."): v for k, v in old.items()}
    save_checkpoint(tmp_path / "old.pt", {"version": "0.1.0", "config": cfg.to_dict(), "model": old,
                                          "optimizer": opt.state_dict(), "step": 12, "epoch": 3,
                                          "cache_meta": {"time_compression": 1}})
    state = load_checkpoint(tmp_path / "old.pt")
    assert state["format"] == 0 and state["method"] == "moco" and state["progress"]["step"] == 12
    torch.manual_seed(1)
    fresh = build_method(cfg)
    restore_method(fresh, state)
    for (name, a), b in zip(method.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name
    encoder = load_encoder(tmp_path / "old.pt")
    for name, value in method.encoder.state_dict().items():
        assert torch.equal(encoder.backbone.state_dict()[name], value)
