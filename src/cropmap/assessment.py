"""Accuracy assessment of the map, the consensus labels and each land-cover product.

Against a census reference raster the metrics are pixel counts: confusion matrix, overall
accuracy, precision, recall, F1 and IoU of the crop class, and Cohen's kappa. Each source is
assessed on the pixels where both it and the reference have data (the consensus thus on its
labelled pixels only, with its coverage reported).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import reproject

from cropmap.errors import DataError
from cropmap.grid import AreaGrid

__all__ = ["binary_metrics", "reference_on_grid", "reference_from_settings", "assess_sources", "metrics_table",
           "stratified_estimate"]

NODATA = 255


def binary_metrics(predicted: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """Metrics of the crop class (1) against the reference; 255 in either array is ignored."""
    sel = (predicted != NODATA) & (reference != NODATA)
    p, r = predicted[sel].astype(bool), reference[sel].astype(bool)
    tp, fp = int(np.sum(p & r)), int(np.sum(p & ~r))
    fn, tn = int(np.sum(~p & r)), int(np.sum(~p & ~r))
    n = tp + fp + fn + tn
    oa = (tp + tn) / n if n else float("nan")
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    iou = tp / (tp + fp + fn) if tp + fp + fn else 0.0
    expected = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / n**2 if n else float("nan")
    kappa = (oa - expected) / (1 - expected) if n and expected != 1 else 0.0
    return {
        "f1": f1, "precision": precision, "recall": recall, "iou": iou, "oa": oa, "kappa": kappa,
        # rows = reference (non-crop, crop), columns = predicted (non-crop, crop)
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "pixels": n,
        "coverage": n / max(int(np.sum(reference != NODATA)), 1),
    }


VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp", ".fgb")


def reference_on_grid(path: str, grid: AreaGrid, *, crop_classes: Sequence[int], nodata: int | None,
                      class_column: str = "class", crs: str = "EPSG:4326") -> np.ndarray:
    """The reference recoded to 1 / 0 / 255 on the area grid.

    A raster (a crop census layer) is resampled by nearest neighbour; a CSV of points (columns
    `lon`, `lat`, or `x`, `y` in `crs`) or a vector file of labelled points or polygons is burnt
    into the grid, its `class_column` mapped to crop through `crop_classes`; pixels without a
    reference are 255.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        values = _points_csv_on_grid(path, grid, class_column=class_column, crs=crs)
    elif suffix in VECTOR_SUFFIXES:
        values = _vector_on_grid(path, grid, class_column=class_column)
    else:
        values = _raster_on_grid(path, grid)
    out = np.where(np.isin(values, crop_classes), 1, 0).astype(np.uint8)
    out[values == -1] = NODATA
    if nodata is not None:
        out[values == nodata] = NODATA
    if np.all(out == NODATA):
        raise DataError(f"the reference {path} does not overlap the map (CRS {grid.crs}, bounds "
                        f"{tuple(round(b) for b in grid.bounds)}); check its CRS and extent")
    if not np.any(out == 1):
        found = np.unique(values[out != NODATA])[:20].tolist()
        raise DataError(f"none of the reference's crop classes {list(crop_classes)} occurs in {path} over the map "
                        f"(values found: {found}); set areas.<area>.reference.crop_classes")
    return out


def reference_from_settings(ref: Mapping[str, Any], grid: AreaGrid) -> np.ndarray:
    """`reference_on_grid` for an `areas.<area>.reference` entry of the config."""
    return reference_on_grid(ref["path"], grid, crop_classes=ref["crop_classes"], nodata=ref.get("nodata"),
                             class_column=ref.get("class_column", "class"), crs=ref.get("crs", "EPSG:4326"))


def _raster_on_grid(path: str, grid: AreaGrid) -> np.ndarray:
    try:
        src = rasterio.open(path)
    except rasterio.RasterioIOError as err:
        raise DataError(f"cannot open the reference {path}: {err}") from None
    with src:
        if src.crs is None:
            raise DataError(f"the reference {path} has no CRS")
        values = np.full(grid.shape, -1, np.int32)
        reproject(rasterio.band(src, 1), values, dst_transform=grid.transform, dst_crs=grid.crs,
                  dst_nodata=-1, resampling=Resampling.nearest)
    return values


def _burn_points(xs, ys, classes, grid: AreaGrid) -> np.ndarray:
    values = np.full(grid.shape, -1, np.int32)
    rows, cols = rasterio.transform.rowcol(grid.transform, xs, ys)
    rows, cols = np.asarray(rows), np.asarray(cols)
    inside = (rows >= 0) & (rows < grid.shape[0]) & (cols >= 0) & (cols < grid.shape[1])
    values[rows[inside], cols[inside]] = np.asarray(classes, np.int32)[inside]
    return values


def _points_csv_on_grid(path: str, grid: AreaGrid, *, class_column: str, crs: str) -> np.ndarray:
    import csv

    from rasterio.warp import transform as warp_transform

    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as err:
        raise DataError(f"cannot read the reference {path}: {err}") from None
    if not rows:
        raise DataError(f"the reference {path} has no points")
    columns = set(rows[0])
    if class_column not in columns:
        raise DataError(f"the reference {path} has no column {class_column!r} (columns: {sorted(columns)}); "
                        "set areas.<area>.reference.class_column")
    if {"lon", "lat"} <= columns:
        xs, ys, src_crs = [float(r["lon"]) for r in rows], [float(r["lat"]) for r in rows], "EPSG:4326"
    elif {"x", "y"} <= columns:
        xs, ys, src_crs = [float(r["x"]) for r in rows], [float(r["y"]) for r in rows], crs
    else:
        raise DataError(f"the reference {path} needs lon/lat or x/y columns (columns: {sorted(columns)})")
    try:
        classes = [int(float(r[class_column])) for r in rows]
    except ValueError as err:
        raise DataError(f"the reference {path}: column {class_column!r} must hold class numbers ({err})") from None
    xs, ys = warp_transform(src_crs, grid.crs, xs, ys)
    return _burn_points(xs, ys, classes, grid)


def _vector_on_grid(path: str, grid: AreaGrid, *, class_column: str) -> np.ndarray:
    import pyogrio
    import shapely
    from rasterio.features import rasterize

    from cropmap.grid import reproject_geometry

    try:
        frame = pyogrio.raw.read(path)
    except Exception as err:
        raise DataError(f"cannot read the reference {path}: {err}") from None
    meta, _, geometry, fields = frame
    names = list(meta["fields"])
    if class_column not in names:
        raise DataError(f"the reference {path} has no field {class_column!r} (fields: {names}); "
                        "set areas.<area>.reference.class_column")
    if not meta.get("crs"):
        raise DataError(f"the reference {path} has no CRS")
    classes = np.asarray(fields[names.index(class_column)]).astype(np.int32)
    geoms = [reproject_geometry(g, meta["crs"], grid.crs) for g in shapely.from_wkb(geometry)]
    if all(g.geom_type == "Point" for g in geoms):
        return _burn_points([g.x for g in geoms], [g.y for g in geoms], classes, grid)
    return rasterize(zip(geoms, classes.tolist()), out_shape=grid.shape, transform=grid.transform, fill=-1,
                     dtype="int32")


def assess_sources(reference: np.ndarray, sources: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    return {name: binary_metrics(values, reference) for name, values in sources.items()}


def metrics_table(metrics: Mapping[str, Mapping[str, Any]], *, decimals: int = 3, csv: bool = False) -> str:
    """The metrics, one row per source, as a Markdown table (or CSV)."""
    cols = ["f1", "precision", "recall", "iou", "oa", "kappa", "coverage"]
    if csv:
        rows = ["source," + ",".join(cols)]
        rows += [f"{name}," + ",".join(f"{m[c]:.{decimals}f}" for c in cols) for name, m in metrics.items()]
        return "\n".join(rows) + "\n"
    lines = ["| source | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, m in metrics.items():
        lines.append(f"| {name} | " + " | ".join(f"{m[c]:.{decimals}f}" for c in cols) + " |")
    return "\n".join(lines) + "\n"


def per_tile_metrics(predicted: np.ndarray, reference: np.ndarray, grid: AreaGrid) -> dict[str, dict[str, Any]]:
    """Metrics of each tile of the grid, to show where the map is weak."""
    out = {}
    for tile in grid.tiles:
        r, c = grid.offset(tile)
        window = (slice(r, r + tile.size), slice(c, c + tile.size))
        out[tile.id] = binary_metrics(predicted[window], reference[window])
    return out


def stratified_estimate(counts, mapped_area, *, z: float = 1.96) -> dict[str, Any]:
    """Accuracy and area from a stratified random sample (Olofsson et al. 2014, RSE 148, eqs. 2-11).

    counts: (k, k) sample counts, rows = map class (= stratum), columns = reference class.
    mapped_area: (k,) mapped area of each stratum (pixels, ha, ...; areas come out in that unit).
    Returns plain lists: `overall_accuracy` (+ `_se`), `users_accuracy`, `producers_accuracy`
    (+ `_se`), the error matrix in area proportions, and per reference class `area`, `area_se`
    and `area_ci95` (the half-width of the interval at `z`).
    """
    n = np.asarray(counts, dtype=float)
    area = np.asarray(mapped_area, dtype=float)
    k = n.shape[0]
    if n.shape != (k, k) or area.shape != (k,):
        raise ValueError(f"counts must be (k, k) and mapped_area (k,), got {n.shape} and {area.shape}")
    n_i = n.sum(axis=1)
    if np.any(n_i < 2):
        raise DataError("every stratum needs at least 2 sample points for a standard error")
    total = area.sum()
    w = area / total
    p = w[:, None] * n / n_i[:, None]  # error matrix in area proportions
    p_ref = p.sum(axis=0)
    oa = float(np.trace(p))
    users = np.diag(n) / n_i
    var_users = users * (1 - users) / (n_i - 1)
    var_oa = float(np.sum(w**2 * users * (1 - users) / (n_i - 1)))
    producers = np.divide(np.diag(p), p_ref, out=np.zeros(k), where=p_ref > 0)
    ref_total = (area[:, None] * n / n_i[:, None]).sum(axis=0)  # estimated reference area per class
    var_producers = np.zeros(k)
    for j in range(k):
        if ref_total[j] == 0:
            continue
        own = area[j] ** 2 * (1 - producers[j]) ** 2 * users[j] * (1 - users[j]) / (n_i[j] - 1)
        others = sum(area[i] ** 2 * (n[i, j] / n_i[i]) * (1 - n[i, j] / n_i[i]) / (n_i[i] - 1)
                     for i in range(k) if i != j)
        var_producers[j] = (own + producers[j] ** 2 * others) / ref_total[j] ** 2
    se_p_ref = np.sqrt(np.sum((w[:, None] * p - p**2) / (n_i[:, None] - 1), axis=0))
    return {
        "error_matrix_proportions": p.tolist(),
        "overall_accuracy": oa,
        "overall_accuracy_se": var_oa**0.5,
        "users_accuracy": users.tolist(),
        "users_accuracy_se": np.sqrt(var_users).tolist(),
        "producers_accuracy": producers.tolist(),
        "producers_accuracy_se": np.sqrt(var_producers).tolist(),
        "area": (p_ref * total).tolist(),
        "area_se": (se_p_ref * total).tolist(),
        "area_ci95": (z * se_p_ref * total).tolist(),
    }
