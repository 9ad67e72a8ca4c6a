"""What a person looks at: quick looks of the map and its probability, data availability per tile
and period, and the confusion matrices."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from cropmap.conventions import CLASS_COLOURS, CLASS_NAMES, CROP, MAP_CLASSES, NODATA, NONCROP
from cropmap.io import atomic_path
from cropmap.plotting import pyplot, save_png

__all__ = ["availability", "confusion_plot", "quicklook", "uncertainty_quicklook"]


def _read_overview(path, max_side: int = 1024) -> tuple[np.ndarray, Any]:
    """Band 1 decimated to at most `max_side` pixels (from the overviews when there are), and the CRS."""
    with rasterio.open(path) as src:
        factor = max(1, int(np.ceil(max(src.width, src.height) / max_side)))
        out_shape = (src.height // factor or 1, src.width // factor or 1)
        return src.read(1, out_shape=out_shape), src.crs


def quicklook(*, map_path, probability_path, map_png, probability_png) -> None:
    """PNG quick looks of the class map (with a legend) and the probability map (with a colour bar)."""
    plt = pyplot()
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    classes, crs = _read_overview(map_path)
    fig, ax = plt.subplots(figsize=(7, 7))
    shown = np.where(classes == NODATA, 2, classes).astype(float)
    colours = [*CLASS_COLOURS, "#ffffff"]
    ax.imshow(shown, cmap=ListedColormap(colours), vmin=0, vmax=2, interpolation="nearest")
    ax.legend(handles=[Patch(color=colours[CROP], label=MAP_CLASSES[CROP][2]),
                       Patch(color=colours[NONCROP], label=MAP_CLASSES[NONCROP][2]),
                       Patch(facecolor="white", edgecolor="grey", label="no data")], loc="lower right")
    crop_share = np.mean(classes[classes != NODATA] == CROP) if (classes != NODATA).any() else 0.0
    ax.set_title(f"cropland map ({crop_share:.0%} cropland), {crs}")
    ax.set_axis_off()
    save_png(fig, map_png)

    _percent_quicklook(probability_path, png=probability_png, cmap="YlGn", label="cropland probability (%)",
                       title="cropland probability")


def uncertainty_quicklook(*, uncertainty_path, png) -> None:
    """A PNG quick look of the uncertainty COG (percent, 100 at the decision threshold): white where
    the map is sure, dark red where it is a coin toss, as its QGIS style."""
    from matplotlib.colors import LinearSegmentedColormap

    from cropmap.reporting.styles import UNCERTAINTY_RAMP

    ramp = LinearSegmentedColormap.from_list("uncertainty", [f"#{c}" for c in UNCERTAINTY_RAMP])
    _percent_quicklook(uncertainty_path, png=png, cmap=ramp, label="uncertainty (%): 100 at the decision threshold",
                       title="where the map is unsure")


def _percent_quicklook(path, *, png, cmap, label: str, title: str) -> None:
    """A PNG of a percent raster (0-100, `NODATA` blank) with a colour bar."""
    plt = pyplot()
    values, _ = _read_overview(path)
    fig, ax = plt.subplots(figsize=(7.8, 7))
    im = ax.imshow(np.ma.masked_equal(values, NODATA), cmap=cmap, vmin=0, vmax=100, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8, label=label)
    ax.set_title(title)
    ax.set_axis_off()
    save_png(fig, png)


def availability(*, cube_paths: Sequence[str], out_png, out_csv, out_scenes_csv,
                 max_rows: int = 60) -> list[dict[str, Any]]:
    """Share of each tile's pixels with a clear observation in each composite period (CSV and plot),
    and each tile's scene record: found, loaded, skipped (with the reasons), no clear observation.
    Returns the scene records of tiles that skipped scenes or saw no clear observation."""
    import xarray as xr

    plt = pyplot()
    rows, names, dates, scenes = [], [], None, []
    for path in cube_paths:
        with xr.open_dataset(path, engine="netcdf4") as cube:
            clear = (cube["clear_count"].values > 0).mean(axis=(1, 2))
            dates = [str(np.datetime_as_string(t, unit="D")) for t in cube["time"].values]
            rows.append(clear)
            name = str(cube.attrs.get("tile", Path(path).stem))
            skipped = json.loads(cube.attrs.get("skipped_scenes", "[]"))
            scenes.append({"tile": name, "scenes_found": int(cube.attrs.get("scenes_found", 0)),
                           "scenes_loaded": int(cube.attrs.get("scenes_loaded", 0)), "scenes_skipped": len(skipped),
                           "no_clear_observation": int(cube.attrs.get("no_clear_observation", 0)),
                           "skipped": "; ".join(f"{s['item_id']} {s['asset']}: {s['reason']}" for s in skipped)})
            flags = [f"{len(skipped)} skipped"] if skipped else []
            flags += ["NO CLEAR OBSERVATION"] if scenes[-1]["no_clear_observation"] else []
            names.append(f"{name} ({', '.join(flags)})" if flags else name)
    matrix = np.array(rows)
    with atomic_path(out_csv) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["tile", *dates])
        for record, row in zip(scenes, matrix):
            writer.writerow([record["tile"], *(f"{v:.3f}" for v in row)])
    with atomic_path(out_scenes_csv) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(scenes[0]))
        writer.writeheader()
        writer.writerows(scenes)
    if len(names) <= max_rows:
        fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(dates)), 1 + 0.4 * len(names)))
        im = ax.imshow(matrix, aspect="auto", cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_title("share of pixels with a clear observation, per tile and composite period")
        fig.colorbar(im, ax=ax, shrink=0.8)
    else:  # thousands of tiles: their spread per period, and how many tiles are flagged
        fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(dates)), 4))
        low, mid, high = np.percentile(matrix, [10, 50, 90], axis=0)
        ax.fill_between(range(len(dates)), low, high, alpha=0.3, label="10th-90th percentile of tiles")
        ax.plot(range(len(dates)), mid, marker=".", label="median tile")
        ax.set_ylim(0, 1)
        ax.legend(loc="lower right")
        flagged = sum(1 for r in scenes if r["scenes_skipped"] or r["no_clear_observation"])
        ax.set_title(f"share of pixels with a clear observation per composite period, {len(names)} tiles "
                     f"({flagged} flagged: see scenes.csv)")
    ax.set_xticks(range(len(dates)), dates, rotation=90, fontsize=7)
    save_png(fig, out_png)
    return [r for r in scenes if r["scenes_skipped"] or r["no_clear_observation"]]


def confusion_plot(metrics: Mapping[str, Mapping[str, Any]], out_png) -> None:
    """Confusion matrices (pixel counts, rows = reference) of every source, side by side."""
    plt = pyplot()
    names = list(metrics)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        cm = np.array(metrics[name]["confusion_matrix"], float)
        share = cm / max(cm.sum(), 1)
        ax.imshow(share, cmap="Greens", vmin=0, vmax=max(share.max(), 1e-9))
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, f"{int(v):,}\n{share[i, j]:.1%}", ha="center", va="center", fontsize=8)
        ax.set_xticks([0, 1], CLASS_NAMES)
        ax.set_yticks([0, 1], CLASS_NAMES)
        ax.set_xlabel("predicted")
        ax.set_ylabel("reference")
        ax.set_title(f"{name}  F1 {metrics[name]['f1']:.3f}")
    fig.tight_layout()
    save_png(fig, out_png)
