"""How good are the weak labels of an area: coverage, class balance, agreement between products,
and, where a reference exists, their accuracy next to each product's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cropmap.assessment.metrics import reference_from_settings
from cropmap.conventions import CLASS_COLOURS, NODATA
from cropmap.grid import AreaGrid, tiles_for_area
from cropmap.io import write_json
from cropmap.labels.blocks import BlockRasters, product_band
from cropmap.settings import LabelQualitySettings

__all__ = ["LabelCounts", "label_quality", "summarise_labels"]


class LabelCounts:
    """What the label-quality summary is made of, as counts added window by window."""

    def __init__(self, products: Sequence[str]):
        self.names = list(products)
        n = len(self.names)
        self.pixels = self.labelled = self.labelled_crop = 0
        self.covered = np.zeros(n, np.int64)
        self.covered_crop = np.zeros(n, np.int64)
        self.both = np.zeros((n, n), np.int64)
        self.same = np.zeros((n, n), np.int64)
        self.checked = np.zeros(n + 1, np.int64)  # consensus, then each product: pixels with a reference
        self.correct = np.zeros(n + 1, np.int64)
        self.with_reference = False

    def add(self, labels: np.ndarray, products: Mapping[str, np.ndarray], reference: np.ndarray | None = None) -> None:
        """Count one window: consensus `labels`, the recoded `products`, and the reference (1 / 0 / 255)."""
        stack = [products[name] for name in self.names]
        self.pixels += labels.size
        labelled = labels != NODATA
        self.labelled += int(labelled.sum())
        self.labelled_crop += int(np.sum(labels[labelled] == 1))
        has = [p != NODATA for p in stack]
        for i, product in enumerate(stack):
            self.covered[i] += int(has[i].sum())
            self.covered_crop[i] += int(np.sum(product[has[i]] == 1))
            for j in range(i + 1, len(stack)):
                both = has[i] & has[j]
                self.both[i, j] += int(both.sum())
                self.same[i, j] += int(np.sum(product[both] == stack[j][both]))
        if reference is not None:
            self.with_reference = True
            for k, values in enumerate([labels, *stack]):
                sel = (values != NODATA) & (reference != NODATA)
                self.checked[k] += int(sel.sum())
                self.correct[k] += int(np.sum(values[sel] == reference[sel]))

    def summary(self) -> dict[str, Any]:
        def share(part, whole):
            return float(part / whole) if whole else float("nan")

        matrix = np.eye(len(self.names))
        for i in range(len(self.names)):
            for j in range(i + 1, len(self.names)):
                matrix[i, j] = matrix[j, i] = share(self.same[i, j], self.both[i, j])
        summary: dict[str, Any] = {
            "pixels": int(self.pixels),
            "labelled_fraction": share(self.labelled, self.pixels),
            "crop_share_of_labels": share(self.labelled_crop, self.labelled),
            "products": {name: {"coverage": share(self.covered[i], self.pixels),
                                "crop_share": share(self.covered_crop[i], self.covered[i])}
                         for i, name in enumerate(self.names)},
            "pairwise_agreement": {"products": self.names, "matrix": matrix.tolist()},
        }
        if self.with_reference:
            # accuracy of each source on the pixels it labels
            summary["accuracy"] = {name: share(self.correct[k], self.checked[k])
                                   for k, name in enumerate(["consensus", *self.names])}
        return summary


def summarise_labels(labels: np.ndarray, products: Mapping[str, np.ndarray],
                     reference: np.ndarray | None = None) -> dict[str, Any]:
    """Summary of consensus `labels` and the recoded `products` (all on one grid, 1 / 0 / 255)."""
    counts = LabelCounts(list(products))
    counts.add(labels, products, reference)
    return counts.summary()


def _plot(labels, agreeing, summary, path) -> None:
    from matplotlib.colors import ListedColormap

    from cropmap.plotting import pyplot, save_png

    plt = pyplot()

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.5))
    shown = np.where(labels == NODATA, 2, labels).astype(float)
    axes[0].imshow(shown, cmap=ListedColormap([*CLASS_COLOURS, "#dddddd"]), vmin=0, vmax=2,
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
    save_png(fig, path, dpi=90, tight=False)


def label_quality(*, settings: LabelQualitySettings, label_paths: Sequence[str], out_json, out_png,
                  plot_side: int = 1024) -> dict[str, Any]:
    """Summary (JSON) and plot of the block label files of an area, tile by tile: memory is that of
    one tile and of the plot's picture (at most `plot_side` pixels across), whatever the area."""
    tiles = tiles_for_area(settings.grid)
    grid = AreaGrid(tuple(tiles))
    blocks = BlockRasters(label_paths)
    bands = {name: product_band(label_paths[0], name) for name in settings.products}
    ref = settings.reference
    reference = reference_from_settings(ref, grid.crs) if ref else None
    counts = LabelCounts(list(bands))
    step = max(1, int(np.ceil(max(grid.shape) / plot_side)))
    picture = np.full((2, *(-(-n // step) for n in grid.shape)), NODATA, np.uint8)  # labels, agreeing
    for tile in tiles:
        labels = blocks.read(tile.bounds, band=1, name=tile.id)
        agreeing = blocks.read(tile.bounds, band=3, name=tile.id)
        products = {name: blocks.read(tile.bounds, band=band, name=tile.id) for name, band in bands.items()}
        counts.add(labels, products, reference.window(tile) if reference is not None else None)
        r, c = grid.offset(tile)
        # every step-th pixel of the area: the first such row and column inside this tile
        dr, dc = -r % step, -c % step
        part = np.stack([labels, agreeing])[:, dr::step, dc::step]
        pr, pc = (r + dr) // step, (c + dc) // step
        picture[:, pr:pr + part.shape[1], pc:pc + part.shape[2]] = part
    if reference is not None:
        reference.check(grid.bounds)
    summary = counts.summary()
    write_json(out_json, summary)
    _plot(picture[0], np.where(picture[1] == NODATA, 0, picture[1]), summary, out_png)
    return summary
