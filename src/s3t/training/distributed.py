"""Joining torchrun's process group, and the checks that keep its ranks in step."""

from __future__ import annotations

import atexit
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from s3t.devices import resolve_device, world_size

log = logging.getLogger(__name__)


@dataclass
class World:
    """This process's place among torchrun's: its rank, how many there are, its device."""

    rank: int = 0
    size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> World:
    """Join the torchrun group when WORLD_SIZE > 1 (NCCL on GPU, gloo on CPU). On GPU, each of
    torchrun's processes takes the GPU of its LOCAL_RANK; one process takes the one `device` names."""
    dev = resolve_device(device, "train.device")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if dev.type == "cuda":
        if world > 1 and dev.index is not None:
            raise ValueError(f"train.device={device} names one GPU, but torchrun started {world} processes: use "
                             "train.device=cuda (each process takes the GPU of its LOCAL_RANK)")
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) if world > 1 else dev.index or 0)
        torch.cuda.set_device(dev)
    rank = int(os.environ.get("RANK", "0"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            dist.init_process_group(backend, store=_attempt_store(world), rank=rank, world_size=world)
        else:
            dist.init_process_group(backend)
        # left to interpreter shutdown, gloo's threads can abort the process after a run that
        # finished ("terminate called without an active exception", pytorch#190489)
        atexit.register(_leave_group)
    return World(rank, world, dev)


def _leave_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _attempt_store(world: int) -> dist.Store:
    """torchrun's store, in a key space of this attempt's own. torchrun keeps one store for the
    whole job, restarts included, and a restarted rank can read the dead attempt's addresses there
    and fail or hang (pytorch#135712). Every worker of every node joins once per attempt, so the
    join count tells the attempt apart (TORCHELASTIC_RESTART_COUNT differs between nodes)."""
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world, is_master=False)
    attempt = (store.add("s3t/joined", 1) - 1) // world
    return dist.PrefixStore(f"s3t/attempt{attempt}", store)


def finite_on_every_rank(loss: torch.Tensor) -> bool:
    """Under DDP every rank must take or skip a step together: one rank skipping backward() while the
    others all-reduce their gradients would put the collectives out of step and hang the job."""
    finite = torch.isfinite(loss.detach()).to(torch.int32).reshape(1)
    if world_size() > 1:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite)


def weight_checksums(model: torch.nn.Module, world: World) -> list[float]:
    """Each rank's sum of `model`'s weights (one number per rank): equal when the ranks are in step."""
    total = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
    if world.size == 1:
        return [float(total)]
    parts = [torch.zeros_like(total) for _ in range(world.size)]
    dist.all_gather(parts, total)
    return [float(p) for p in parts]
