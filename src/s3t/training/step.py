"""One optimiser step, and what it steps with: the optimizer, and the method's modules fused and
compiled for the device. `fit` runs it; so does anything that takes single steps (the demo's timing)."""

from __future__ import annotations

import torch

from s3t.config.schema import Config
from s3t.methods.base import Method
from s3t.models.swin import fuse_attention
from s3t.seeds import step_seed
from s3t.training.distributed import finite_on_every_rank


def build_optimizer(method: Method, cfg: Config) -> torch.optim.Optimizer:
    """Adam(W) over the trainable parameters, fused into one kernel per step where they sit on a GPU."""
    params = [p for p in method.parameters() if p.requires_grad]
    kind = torch.optim.AdamW if cfg.optim.optimizer == "adamw" else torch.optim.Adam
    on_gpu = bool(params) and params[0].device.type == "cuda"
    return kind(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay, fused=on_gpu or None)


def speed_up(method: Method, cfg: Config, device: torch.device) -> None:
    """Fused attention on GPU; with train.compile (by default on GPU), each of the method's modules compiled in place
    (`nn.Module.compile`: the state dict, hence every checkpoint, keeps its keys)."""
    if device.type == "cuda":
        fuse_attention(method)
    if cfg.train.compile is True or (cfg.train.compile == "auto" and device.type == "cuda"):
        for child in method.children():
            child.compile(backend=cfg.train.compile_backend)


def train_step(net: torch.nn.Module, method: Method, opt: torch.optim.Optimizer, batch, cfg: Config,
               gen: torch.Generator, step: int, use_amp: bool, rank: int = 0
               ) -> tuple[float, dict[str, float], bool]:
    """One optimiser step of `method` (through `net`, its DDP wrapper or itself) on a batch already on
    its device; returns the loss, the method's stats and whether the step was taken: a loss that is
    not finite on some rank takes the step on no rank."""
    torch.manual_seed(step_seed(cfg.train.seed, step, 1, rank))  # drop-path
    gen.manual_seed(step_seed(cfg.train.seed, step, 2, rank))  # augmentation
    with torch.autocast(gen.device.type, dtype=torch.bfloat16, enabled=use_amp):
        loss, stats = net(batch, gen)
    opt.zero_grad(set_to_none=True)
    if not finite_on_every_rank(loss):
        return float(loss.detach()), stats, False
    loss.backward()
    if cfg.optim.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(method.parameters(), cfg.optim.grad_clip)
    opt.step()
    method.after_step()
    return float(loss.detach()), stats, True
