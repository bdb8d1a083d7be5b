"""Device names: one grammar for `train.device` and every `--device`; a GPU this machine lacks is an error."""

import pytest
import torch

from s3t.devices import check_device_name, resolve_device


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_every_documented_name_is_accepted(name):
    check_device_name(name, "train.device")


@pytest.mark.parametrize("name", ["gpu", "CPU", "cuda:", "cuda:x", "cuda:-1", "mps", "", None, 0])
def test_any_other_name_is_refused_naming_the_key(name):
    with pytest.raises(ValueError, match=r"train\.device: unknown device .*expected auto, cpu, cuda or cuda:N"):
        check_device_name(name, "train.device")


def test_auto_and_cpu_resolve_on_this_machine():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda:0" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for a GPU that a CPU machine lacks")
def test_a_gpu_this_machine_lacks_is_an_error_naming_the_key():
    with pytest.raises(ValueError, match=r"^train\.device=cuda:1: no CUDA device is visible on this machine; use cpu"):
        resolve_device("cuda:1", "train.device")
    with pytest.raises(ValueError, match=r"^no CUDA device is visible"):  # an argument: no key to name
        resolve_device("cuda")


def test_a_gpu_index_past_the_last_is_an_error_with_the_range(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ValueError, match=r"has 2 CUDA device\(s\), cuda:0 to cuda:1"):
        resolve_device("cuda:2", "train.device")
