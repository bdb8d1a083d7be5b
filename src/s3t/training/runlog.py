"""A training run's log.csv: its columns, reading it back, trimming it on resume, its summary and plot.

Columns: step, epoch, the loss and the method's stats (means over the steps since the previous
row), lr, samples/s and elapsed seconds, then the run's readings (a monitor's k-NN and probe top-1,
a validation score), filled in the row that ends an epoch where they were taken, else empty.
"""

from __future__ import annotations

import csv
from pathlib import Path

from s3t.config.schema import Config
from s3t.io.figures import pyplot, save_figure
from s3t.io.files import atomic_write

CORE = ("step", "epoch", "loss", "lr", "samples_per_s", "elapsed_s")  # in every row of every run


def core_fields(stat_names: tuple[str, ...] = ()) -> list[str]:
    """The columns every row has, with a method's stats after the loss."""
    return [*CORE[:3], *stat_names, *CORE[3:]]


def read_log(path: Path) -> list[dict]:
    """The complete rows of a run's log (a row cut short by a kill or a full disk is dropped)."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [r for r in rows if all(r.get(k) not in (None, "") for k in CORE) and r["step"].isdigit()]


def reading_fields(path: Path) -> list[str]:
    """The columns of a log that are readings (after elapsed_s)."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        header = next(csv.reader(f), [])
    return header[header.index("elapsed_s") + 1 :] if "elapsed_s" in header else []


def trim_log(path: Path, step: int, fields: list[str]) -> None:
    """Drop log rows past `step` (written after the checkpoint a resumed run starts from)."""
    if not path.exists():
        return
    rows = [r for r in read_log(path) if int(r["step"]) <= step]
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def run_summary(log_csv: Path, cfg: Config, method: str) -> dict:
    """What a finished run reached, from its log: steps, wall time, last loss and stats, and each
    reading's last and best value (as `monitor_<name>`) where the run took any."""
    rows = read_log(log_csv)
    summary: dict = {"method": method, "model": cfg.model.name, "epochs": cfg.optim.epochs}
    readings = reading_fields(log_csv)
    if rows:
        last = rows[-1]
        summary |= {"steps": int(last["step"]), "elapsed_s": float(last["elapsed_s"]),
                    "last_loss": float(last["loss"])}
        summary |= {f"last_{k}": float(v) for k, v in last.items() if k not in CORE and k not in readings and v}
    for key in readings:
        values = [(float(r[key]), int(r["step"])) for r in rows if r.get(key)]
        if values:
            summary[f"monitor_{key}"] = {"last": values[-1][0], "best": max(values)[0], "best_step": max(values)[1]}
    return summary


def plot_run(log_csv: Path, png: Path) -> None:
    """Loss and learning rate against step, from the run's CSV log; below them, the run's readings
    (monitor, validation) where it has any."""
    rows = read_log(log_csv)
    if not rows:
        return
    plt = pyplot()
    steps = [int(r["step"]) for r in rows]
    readings = [k for k in reading_fields(log_csv) if any(r.get(k) for r in rows)]
    fig, axes = plt.subplots(2 if readings else 1, 1, figsize=(7, 6.5 if readings else 4), squeeze=False)
    ax = axes[0, 0]
    ax.plot(steps, [float(r["loss"]) for r in rows], label="training loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    lr_ax = ax.twinx()
    lr_ax.plot(steps, [float(r["lr"]) for r in rows], color="tab:orange", alpha=0.6, label="lr")
    lr_ax.set_ylabel("learning rate")
    ax.legend(loc="upper left")
    lr_ax.legend(loc="upper right")
    if readings:
        ax = axes[1, 0]
        for key in readings:
            taken = [r for r in rows if r.get(key)]
            ax.plot([int(r["step"]) for r in taken], [float(r[key]) for r in taken], marker="o", label=key)
        ax.set_xlabel("step")
        ax.set_ylabel("reading at epoch end")
        ax.legend()
    save_figure(fig, png)


def open_tensorboard(folder: Path):
    """A TensorBoard writer for `folder` (train.tensorboard=true); the package is an optional extra."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ImportError("train.tensorboard=true needs the tensorboard package: pip install 's3t[tensorboard]'") \
            from None
    return SummaryWriter(str(folder))


def board_row(board, fields: list[str], row: list) -> None:
    """One log.csv row as TensorBoard scalars at its step (readings only where they were taken)."""
    step = int(row[0])
    for name, value in zip(fields, row):
        if name not in ("step", "epoch", "elapsed_s") and value != "":
            board.add_scalar(name, float(value), step)
