"""Writing figures: matplotlib without a display, each picture written atomically."""

from __future__ import annotations

from pathlib import Path

from s3t.io.files import atomic_write


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, png: str | Path) -> None:
    """Lay out, write atomically (a full disk leaves the previous picture) and close `fig`."""
    fig.tight_layout()
    with atomic_write(png) as tmp:
        fig.savefig(tmp, dpi=100)
    pyplot().close(fig)
