"""What `fit` reads batches through: the (seed, epoch) sampler and the DataLoader around it."""

from __future__ import annotations

import torch

from s3t.config.schema import Config
from s3t.seeds import seed_of


class EpochSampler(torch.utils.data.Sampler):
    """This rank's share of a (seed, epoch) permutation, whole global batches only, from a batch on;
    yields (epoch, index) pairs: datasets draw their crops from both, so persistent workers need no
    state from the main process."""

    def __init__(self, n: int, batch: int, rank: int, world: int, seed: int):
        self.n, self.batch, self.rank, self.world, self.seed = n, batch, rank, world, seed
        self.epoch, self.start_batch = 0, 0
        self.batches_per_epoch = n // (batch * world)

    def __iter__(self):
        perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(seed_of(self.seed, self.epoch)))
        G = self.batch * self.world
        for b in range(self.start_batch, self.batches_per_epoch):
            for i in perm[b * G + self.rank * self.batch : b * G + (self.rank + 1) * self.batch].tolist():
                yield self.epoch, i

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch


def training_loader(dataset: torch.utils.data.Dataset, sampler, cfg: Config, device: torch.device,
                    input_kind: str = "spectrogram") -> torch.utils.data.DataLoader:
    """The DataLoader `fit` trains from: pinned float16 spectrogram batches for a GPU (waves keep float32)."""
    on_gpu = device.type == "cuda"
    return torch.utils.data.DataLoader(dataset, batch_size=cfg.train.batch_size, sampler=sampler,
                                       num_workers=cfg.train.workers, drop_last=True, pin_memory=on_gpu,
                                       collate_fn=half_collate if on_gpu and input_kind == "spectrogram" else None,
                                       persistent_workers=cfg.train.workers > 0)


def to_device(batch, device: torch.device):
    """The batch on `device`, float16 tensors (see `half_collate`) back in float32 there."""
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    batch = batch.to(device, non_blocking=True)
    return batch.float() if batch.dtype == torch.float16 else batch


def half_collate(items: list):
    """Collate, with float32 tensors as float16: half the bytes to the GPU. For log-CQT crops in dB
    (the cache holds float16 already) this costs at most half a float16 step of an interpolated value."""
    def halve(x):
        return x.half() if isinstance(x, torch.Tensor) and x.dtype == torch.float32 else x

    # each item halved before the stack: a worker writes the batch once, in float16, into the shared
    # memory it is sent through (halving the stacked batch wrote it in float32, then copied it)
    return torch.utils.data.default_collate([type(item)(map(halve, item)) if isinstance(item, (tuple, list))
                                             else halve(item) for item in items])
