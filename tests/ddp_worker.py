"""A worker that tests/test_distributed.py launches under torchrun (or alone): it trains a
test-only method through the engine's `fit` and writes what its rank saw to OUT/rankR.json.

    python ddp_worker.py OUT NAN_POLICY NAN_STEP   # the loss is NaN on rank 1 at step NAN_STEP
"""

import json
import os
import sys

import torch

from s3t.config.loading import load_config
from s3t.methods.base import Method
from s3t.training.engine import TrainingError, fit


class Draws(Method):
    """Records each step's augmentation and drop-path draws and which steps were taken."""

    name = "draws"

    def __init__(self, rank: int, nan_step: int):
        super().__init__()
        self.encoder = torch.nn.Linear(4, 1)
        self.rank, self.nan_step, self.step = rank, nan_step, 0
        self.draws: list[list[float]] = []
        self.taken: list[int] = []

    def forward(self, batch, gen):
        self.draws.append(torch.rand(2, generator=gen).tolist() + torch.rand(1).tolist())
        loss = self.encoder(batch).pow(2).mean()
        if self.rank == 1 and self.step == self.nan_step:
            loss = loss * float("nan")
        self.step += 1
        return loss, {}

    def after_step(self):
        self.taken.append(self.step - 1)


class Items(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, key):
        epoch, i = key
        return torch.full((4,), float(i + epoch))


def main(out: str, nan_policy: str, nan_step: str) -> int:
    rank = int(os.environ.get("RANK", "0"))
    cfg = load_config(overrides=["train.device=cpu", "train.batch_size=2", "train.workers=0", "optim.epochs=2",
                                 "optim.warmup_epochs=0", f"train.nan_policy={nan_policy}"])
    torch.manual_seed(0)
    method = Draws(rank, int(nan_step))
    error = ""
    try:
        fit(method, Items(), cfg, out, progress=False)
    except TrainingError as e:
        error = str(e)
    record = {"draws": method.draws, "taken": method.taken, "error": error,
              "weights": [p.detach().flatten().tolist() for p in method.parameters()]}
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(record, f)
    return 3 if error else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
