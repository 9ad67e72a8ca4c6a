"""How good are the weak labels of an area: coverage, class balance, agreement between products,
and, where a reference exists, their accuracy next to each product's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cropmap.assessment import reference_from_settings
from cropmap.consensus import UNLABELLED, pairwise_agreement
from cropmap.grid import AreaGrid, tiles_for_area
from cropmap.io import atomic_path, read_mosaic, write_json
from cropmap.labels import product_band

__all__ = ["label_quality", "summarise_labels"]


def _accuracy(values: np.ndarray, reference: np.ndarray) -> float:
    sel = (values != UNLABELLED) & (reference != UNLABELLED)
    return float(np.mean(values[sel] == reference[sel])) if sel.any() else float("nan")


def summarise_labels(labels: np.ndarray, products: Mapping[str, np.ndarray],
                     reference: np.ndarray | None = None) -> dict[str, Any]:
    """Summary of consensus `labels` and the recoded `products` (all on one grid, 1 / 0 / 255)."""
    labelled = labels != UNLABELLED
    names = list(products)
    stack = np.stack([products[n] for n in names])
    summary: dict[str, Any] = {
        "pixels": int(labels.size),
        "labelled_fraction": float(labelled.mean()),
        "crop_share_of_labels": float(np.mean(labels[labelled] == 1)) if labelled.any() else float("nan"),
        "products": {n: {"coverage": float(np.mean(products[n] != UNLABELLED)),
                         "crop_share": float(np.mean(products[n][products[n] != UNLABELLED] == 1))
                         if (products[n] != UNLABELLED).any() else float("nan")} for n in names},
        "pairwise_agreement": {"products": names, "matrix": pairwise_agreement(stack).tolist()},
    }
    if reference is not None:
        # accuracy of each source on the pixels it labels
        summary["accuracy"] = {"consensus": _accuracy(labels, reference),
                               **{n: _accuracy(products[n], reference) for n in names}}
    return summary


def _plot(labels, agreeing, summary, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.5))
    shown = np.where(labels == UNLABELLED, 2, labels).astype(float)
    axes[0].imshow(shown, cmap=ListedColormap(["#8c6d31", "#f2c72e", "#dddddd"]), vmin=0, vmax=2,
                   interpolation="nearest")
    axes[0].set_title(f"consensus labels ({summary['labelled_fraction']:.0%} labelled)\n"
                      "yellow crop, brown non-crop, grey unlabelled")
    im = axes[1].imshow(agreeing, cmap="viridis", interpolation="nearest")
    axes[1].set_title("products agreeing")
    fig.colorbar(im, ax=axes[1], shrink=0.8)
    names = summary["pairwise_agreement"]["products"]
    matrix = np.array(summary["pairwise_agreement"]["matrix"])
    im = axes[2].imshow(matrix, vmin=0.5, vmax=1, cmap="Blues")
    axes[2].set_xticks(range(len(names)), names, rotation=30)
    axes[2].set_yticks(range(len(names)), names)
    for (i, j), v in np.ndenumerate(matrix):
        axes[2].text(j, i, f"{v:.2f}", ha="center", va="center")
    axes[2].set_title("pairwise agreement of products")
    for ax in axes[:2]:
        ax.set_axis_off()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def label_quality(*, settings: dict[str, Any], label_paths: Sequence[str], out_json, out_png) -> dict[str, Any]:
    """Summary (JSON) and plot of the block label files of an area."""
    grid = AreaGrid(tuple(tiles_for_area(settings["grid"])))
    labels = read_mosaic(label_paths, grid=grid, band=1)
    agreeing = read_mosaic(label_paths, grid=grid, band=3)
    recoded = {name: read_mosaic(label_paths, grid=grid, band=product_band(label_paths[0], name))
               for name in settings["products"]}
    reference = None
    ref = settings.get("reference")
    if ref:
        reference = reference_from_settings(ref, grid)
    summary = summarise_labels(labels, recoded, reference)
    write_json(out_json, summary)
    _plot(labels, agreeing, summary, out_png)
    return summary
