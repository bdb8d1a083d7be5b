"""Where work runs: device names, read in one place (`train.device` and every `--device` accept the
same ones), and the size of the torch.distributed group this process is in."""

from __future__ import annotations

import re

import torch
import torch.distributed as dist

DEVICE_NAMES = "auto, cpu, cuda or cuda:N"
_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device_name(name: str, key: str) -> None:
    """Refuse a device name that is not one of DEVICE_NAMES (a typo must not silently mean the CPU)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"{key}: unknown device {name!r}; expected {DEVICE_NAMES}")


def resolve_device(name: str, key: str = "") -> torch.device:
    """The torch.device `name` means (auto: the first GPU when one is visible); a GPU asked for
    that this machine does not have is an error naming `key` (a config key; none for an argument)."""
    check_device_name(name, key or "device")
    where = f"{key}={name}: " if key else ""
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{where}no CUDA device is visible on this machine; use cpu")
        if (device.index or 0) >= count:
            raise ValueError(f"{where}this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return device


def world_size() -> int:
    """Processes in this process's torch.distributed group: 1 outside one."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank in its torch.distributed group: 0 outside one."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
