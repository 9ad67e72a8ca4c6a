"""Figures without a screen: one matplotlib setup, one way to save a PNG."""

from __future__ import annotations

__all__ = ["pyplot", "save_png"]


def pyplot():
    """matplotlib.pyplot on the Agg backend (jobs have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path, *, dpi: int = 100, tight: bool = True) -> None:
    """Write `fig` as a PNG atomically and close it."""
    from cropmap.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    pyplot().close(fig)
