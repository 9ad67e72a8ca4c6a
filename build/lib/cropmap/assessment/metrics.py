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

from rasterio.windows import from_bounds

from cropmap.conventions import NODATA
from cropmap.errors import DataError
from cropmap.grid import AreaGrid, Tile
from cropmap.settings import AssessSettings, ReferenceSettings

__all__ = ["Reference", "ablation_table", "assess", "assess_area", "binary_metrics", "confusion", "metrics_from_confusion",
           "metrics_table", "reference_from_settings", "reference_on_grid", "summarise_seeds", "summary_table"]


def confusion(predicted: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(2, 2) pixel counts, rows = reference (non-crop, crop), columns = predicted; 255 in either
    array is ignored."""
    sel = (predicted != NODATA) & (reference != NODATA)
    codes = reference[sel].astype(np.intp) * 2 + predicted[sel].astype(bool)
    return np.bincount(codes, minlength=4).reshape(2, 2).astype(np.int64)


def metrics_from_confusion(matrix, *, reference_pixels: int | None = None) -> dict[str, Any]:
    """Metrics of the crop class from a confusion matrix (rows = reference, columns = predicted);
    `coverage` is the share of the `reference_pixels` the source covers."""
    (tn, fp), (fn, tp) = (int(v) for v in np.asarray(matrix)[0]), (int(v) for v in np.asarray(matrix)[1])
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
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "pixels": n,
        "coverage": n / max(reference_pixels if reference_pixels is not None else n, 1),
    }


def binary_metrics(predicted: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """Metrics of the crop class (1) against the reference; 255 in either array is ignored."""
    return metrics_from_confusion(confusion(predicted, reference), reference_pixels=int(np.sum(reference != NODATA)))


VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp", ".fgb")


class Reference:
    """An area's reference, read window by window on the map's grid as uint8 1 crop / 0 non-crop /
    255 none.

    A raster (a crop census layer) is resampled by nearest neighbour, window by window; a CSV of
    points (columns `lon`, `lat`, or `x`, `y` in `crs`) or a vector file of labelled points or
    polygons is read once and burnt into each window, its `class_column` mapped to crop through
    `crop_classes`. `check()` after the last window says whether the reference overlapped the map
    and held a crop class.
    """

    def __init__(self, path: str, *, grid_crs: str, crop_classes: Sequence[int], nodata: int | None,
                 class_column: str = "class", crs: str = "EPSG:4326"):
        self.path, self.crop_classes, self.nodata = path, list(crop_classes), nodata
        self.grid_crs = grid_crs
        self._seen = 0  # reference pixels found in the windows so far
        self._crop_seen = False
        self._values_found: set[int] = set()
        self._points = self._shapes = None
        suffix = Path(path).suffix.lower()
        if suffix == ".csv":
            self._points = _read_points_csv(path, class_column=class_column, crs=crs, grid_crs=grid_crs)
        elif suffix in VECTOR_SUFFIXES:
            self._points, self._shapes = _read_vector(path, class_column=class_column, grid_crs=grid_crs)
        else:
            try:
                src = rasterio.open(path)
            except rasterio.RasterioIOError as err:
                raise DataError(f"cannot open the reference {path}: {err}") from None
            with src:
                if src.crs is None:
                    raise DataError(f"the reference {path} has no CRS")

    def _values(self, grid) -> np.ndarray:
        """Reference classes on `grid` (anything with crs, transform, shape) as int32, -1 = none."""
        if self._points is not None:
            return _burn_points(*self._points, grid)
        if self._shapes is not None:
            from rasterio.features import rasterize

            return rasterize(self._shapes, out_shape=grid.shape, transform=grid.transform, fill=-1, dtype="int32")
        values = np.full(grid.shape, -1, np.int32)
        with rasterio.open(self.path) as src:
            reproject(rasterio.band(src, 1), values, dst_transform=grid.transform, dst_crs=grid.crs,
                      dst_nodata=-1, resampling=Resampling.nearest)
        return values

    def window(self, grid) -> np.ndarray:
        """The recoded reference on `grid` (uint8 (H, W))."""
        values = self._values(grid)
        out = np.where(np.isin(values, self.crop_classes), 1, 0).astype(np.uint8)
        out[values == -1] = NODATA
        if self.nodata is not None:
            out[values == self.nodata] = NODATA
        has_data = out != NODATA
        self._seen += int(has_data.sum())
        self._crop_seen |= bool(np.any(out == 1))
        if len(self._values_found) < 20:
            self._values_found.update(np.unique(values[has_data])[:20].tolist())
        return out

    def check(self, grid_bounds) -> None:
        """Raise `DataError` if no window held reference data, or none held a crop class."""
        if not self._seen:
            raise DataError(f"the reference {self.path} does not overlap the map (CRS {self.grid_crs}, bounds "
                            f"{tuple(round(b) for b in grid_bounds)}); check its CRS and extent")
        if not self._crop_seen:
            found = sorted(self._values_found)[:20]
            raise DataError(f"none of the reference's crop classes {self.crop_classes} occurs in {self.path} over "
                            f"the map (values found: {found}); set areas.<area>.reference.crop_classes")


def reference_from_settings(ref: ReferenceSettings, crs: str) -> Reference:
    """The `Reference` of an `areas.<area>.reference` entry of the config, for a map in `crs`."""
    return Reference(ref.path, grid_crs=crs, crop_classes=ref.crop_classes, nodata=ref.nodata,
                     class_column=ref.class_column, crs=ref.crs)


def reference_on_grid(path: str, grid: AreaGrid, *, crop_classes: Sequence[int], nodata: int | None,
                      class_column: str = "class", crs: str = "EPSG:4326") -> np.ndarray:
    """The reference recoded to 1 / 0 / 255 on a small grid, in one window (see `Reference`)."""
    reference = Reference(path, grid_crs=grid.crs, crop_classes=crop_classes, nodata=nodata,
                          class_column=class_column, crs=crs)
    out = reference.window(grid)
    reference.check(grid.bounds)
    return out


def _burn_points(xs, ys, classes, grid) -> np.ndarray:
    values = np.full(grid.shape, -1, np.int32)
    rows, cols = rasterio.transform.rowcol(grid.transform, xs, ys)
    rows, cols = np.asarray(rows), np.asarray(cols)
    inside = (rows >= 0) & (rows < grid.shape[0]) & (cols >= 0) & (cols < grid.shape[1])
    values[rows[inside], cols[inside]] = np.asarray(classes, np.int32)[inside]
    return values


def _read_points_csv(path: str, *, class_column: str, crs: str, grid_crs: str):
    """(xs, ys, classes) of a CSV of points, in `grid_crs`."""
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
    xs, ys = warp_transform(src_crs, grid_crs, xs, ys)
    return np.asarray(xs), np.asarray(ys), np.asarray(classes, np.int32)


def _read_vector(path: str, *, class_column: str, grid_crs: str):
    """((xs, ys, classes), None) of a vector file of points, or (None, [(polygon, class), ...]), in `grid_crs`."""
    import pyogrio
    import shapely

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
    geoms = [reproject_geometry(g, meta["crs"], grid_crs) for g in shapely.from_wkb(geometry)]
    if all(g.geom_type == "Point" for g in geoms):
        return (np.array([g.x for g in geoms]), np.array([g.y for g in geoms]), classes), None
    return None, list(zip(geoms, classes.tolist()))


TABLE_COLUMNS = ["f1", "precision", "recall", "iou", "oa", "kappa", "coverage", "f1_agree", "f1_disagree"]


def metrics_table(metrics: Mapping[str, Mapping[str, Any]], *, decimals: int = 3, csv: bool = False) -> str:
    """The metrics, one row per source, as a Markdown table (or CSV); `f1_agree` / `f1_disagree`:
    F1 where the products agree / disagree (blank where a source has no such pixel)."""
    cols = [c for c in TABLE_COLUMNS if any(c in m for m in metrics.values())]

    def cell(m, c):
        return "" if m.get(c) is None else f"{m[c]:.{decimals}f}"

    if csv:
        rows = ["source," + ",".join(cols)]
        rows += [f"{name}," + ",".join(cell(m, c) for c in cols) for name, m in metrics.items()]
        return "\n".join(rows) + "\n"
    lines = ["| source | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, m in metrics.items():
        lines.append(f"| {name} | " + " | ".join(cell(m, c) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def assess_area(*, tiles: Sequence[Tile], reference: Reference, maps: Mapping[str, str], label_paths: Sequence[str],
                products: Sequence[str]) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(metrics of every source, metrics of the first map per tile), tile by tile.

    Sources: each of `maps` (name -> COG), the consensus and each product of the block label files.
    Every source's confusion matrix is accumulated over the tiles, from windows of the reference read
    as uint8; memory is that of one tile, whatever the area. Each source's metrics also hold `agree`
    and `disagree`: the same on the pixels where the products agree (the consensus labels them) and
    on the others, which is where the map has to do better than the products."""
    from cropmap.labels.blocks import BlockRasters, product_band

    labels = BlockRasters(label_paths)
    bands = {"consensus": 1, **{name: product_band(label_paths[0], name) for name in products}}
    names = [*maps, *bands]
    parts = ("all", "agree", "disagree")
    totals = {name: {part: np.zeros((2, 2), np.int64) for part in parts} for name in names}
    reference_pixels = dict.fromkeys(parts, 0)
    per_tile: dict[str, dict[str, Any]] = {}
    opened = {name: rasterio.open(path) for name, path in maps.items()}
    try:
        for tile in tiles:
            ref = reference.window(tile)
            n_ref = int(np.sum(ref != NODATA))
            if not n_ref:  # nothing to compare here (a sparse sample of points leaves most tiles empty)
                per_tile[tile.id] = metrics_from_confusion(np.zeros((2, 2)), reference_pixels=0)
                continue
            values = {name: src.read(1, window=from_bounds(*tile.bounds, transform=src.transform)
                                     .round_offsets().round_lengths()) for name, src in opened.items()}
            values.update({name: labels.read(tile.bounds, band=band, name=tile.id) for name, band in bands.items()})
            agree = values["consensus"] != NODATA
            refs = {"all": ref, "agree": np.where(agree, ref, NODATA), "disagree": np.where(agree, NODATA, ref)}
            for part in parts:
                reference_pixels[part] += int(np.sum(refs[part] != NODATA))
            for name in names:
                for part in parts:
                    totals[name][part] += confusion(values[name], refs[part])
            per_tile[tile.id] = metrics_from_confusion(confusion(values[names[0]], ref), reference_pixels=n_ref)
    finally:
        for src in opened.values():
            src.close()
    metrics = {}
    for name in names:
        metrics[name] = metrics_from_confusion(totals[name]["all"], reference_pixels=reference_pixels["all"])
        for part in ("agree", "disagree"):
            metrics[name][part] = metrics_from_confusion(totals[name][part], reference_pixels=reference_pixels[part])
        metrics[name]["f1_agree"] = metrics[name]["agree"]["f1"] if metrics[name]["agree"]["pixels"] else None
        metrics[name]["f1_disagree"] = metrics[name]["disagree"]["f1"] if metrics[name]["disagree"]["pixels"] else None
    return metrics, per_tile


def assess(*, settings: AssessSettings, map_path: str, extra_maps: Mapping[str, str], label_paths: Sequence[str],
           out_json, out_table, out_csv, out_per_tile, out_confusion_png) -> str:
    """The `assess` step: metrics of the map, `extra_maps`, the consensus and every product against
    the area's reference, as JSON, Markdown, CSV, per-tile CSV and confusion plot; returns the table."""
    from cropmap.reporting.figures import confusion_plot

    metrics, per_tile = _assess_settings(settings, maps={"map": map_path, **extra_maps}, label_paths=label_paths)
    table = metrics_table(metrics, decimals=settings.table_decimals)
    _write_outputs(settings, metrics=metrics, per_tile=per_tile, out_json=out_json, out_per_tile=out_per_tile,
                   tables={out_table: "# Accuracy against the reference\n\n" + table,
                           out_csv: metrics_table(metrics, decimals=settings.table_decimals, csv=True)})
    confusion_plot(metrics, out_confusion_png)
    return table


def _assess_settings(settings: AssessSettings, *, maps: Mapping[str, str], label_paths: Sequence[str]):
    """`assess_area` of the `assess` step's settings: (metrics, per-tile metrics of the first map)."""
    from cropmap.grid import tiles_for_area

    ref = settings.reference
    if not ref:
        raise DataError("assess: the area has no reference data (areas.<area>.reference)")
    tiles = tiles_for_area(settings.grid)
    reference = reference_from_settings(ref, tiles[0].crs)
    metrics, per_tile = assess_area(tiles=tiles, reference=reference, maps=maps, label_paths=label_paths,
                                    products=settings.products)
    reference.check(AreaGrid(tuple(tiles)).bounds)
    return metrics, per_tile


def _write_outputs(settings: AssessSettings, *, metrics, per_tile, out_json, out_per_tile, tables: Mapping[Any, str],
                   extra: Mapping[str, Any] | None = None) -> None:
    from cropmap.io import atomic_path, write_json

    write_json(out_json, {"reference": settings.reference.path, "positive_class": settings.positive_label,
                          "sources": metrics, **(extra or {})})
    with atomic_path(out_per_tile) as tmp:
        tmp.write_text("tile,f1,oa,pixels\n" + "".join(
            f"{tile},{m['f1']:.4f},{m['oa']:.4f},{m['pixels']}\n" for tile, m in per_tile.items()))
    for path, text in tables.items():
        with atomic_path(path) as tmp:
            tmp.write_text(text)


SUMMARY_COLUMNS = {"f1": "F1", "f1_disagree": "F1 where products disagree", "f1_agree": "F1 where they agree",
                   "precision": "precision", "recall": "recall", "selection_f1": "selection F1 (held-out consensus)"}


def summarise_seeds(metrics: Mapping[str, Mapping[str, Any]], selection: Mapping[str, float]) -> dict[str, dict[str, Any]]:
    """Rows of the ablation table: sources named `<variant>@<seed>` grouped by variant with the mean
    and sd of each column over seeds (`selection`: each model's F1 on held-out consensus pixels, the
    number its checkpoint was chosen by); other sources (the consensus, products) as they are."""
    groups: dict[str, list[str]] = {}
    for name in metrics:
        groups.setdefault(name.split("@")[0], []).append(name)
    rows = {}
    for group, names in groups.items():
        row: dict[str, Any] = {"seeds": len(names) if "@" in names[0] else None}
        for column in SUMMARY_COLUMNS:
            values = [selection.get(n) if column == "selection_f1" else metrics[n].get(column) for n in names]
            values = [v for v in values if v is not None]
            row[column] = {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                           "values": values} if values else None
        rows[group] = row
    return rows


def summary_table(rows: Mapping[str, Mapping[str, Any]], *, decimals: int = 3, csv: bool = False) -> str:
    """The ablation rows as Markdown (mean ± sd over seeds) or CSV (mean and sd columns)."""
    def cell(v):
        if v is None:
            return ""
        if csv:
            return f"{v['mean']:.{decimals}f},{v['sd']:.{decimals}f}"
        return f"{v['mean']:.{decimals}f}" + (f" ± {v['sd']:.{decimals}f}" if len(v["values"]) > 1 else "")

    if csv:
        header = "source,seeds," + ",".join(f"{c},{c}_sd" for c in SUMMARY_COLUMNS)
        return "\n".join([header, *(f"{name},{row['seeds'] or ''}," + ",".join(
            cell(row[c]) if row[c] else "," for c in SUMMARY_COLUMNS) for name, row in rows.items())]) + "\n"
    lines = ["| source | seeds | " + " | ".join(SUMMARY_COLUMNS.values()) + " |", "|---" * (len(SUMMARY_COLUMNS) + 2) + "|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['seeds'] or ''} | " + " | ".join(cell(row[c]) for c in SUMMARY_COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def ablation_table(*, settings: AssessSettings, map_path: str, maps: Mapping[str, str], model_paths: Sequence[str],
                   label_paths: Sequence[str], out_json, out_table, out_csv, out_per_tile, out_confusion_png) -> str:
    """The ablation's assessment: every `<variant>@<seed>` map, the main map, the consensus and the
    products, summarised over seeds (`summarise_seeds`); returns the Markdown table."""
    from pathlib import PurePath

    from cropmap.reporting.figures import confusion_plot
    from cropmap.learning.training import load_checkpoint

    selection = {}
    for path in model_paths:  # .../ablation/<variant>/seed<seed>/model.pt
        variant, seed = PurePath(path).parts[-3:-1]
        selection[f"{variant}@{seed.removeprefix('seed')}"] = load_checkpoint(path).get("val_f1")
    metrics, per_tile = _assess_settings(settings, maps={"map": map_path, **maps}, label_paths=label_paths)
    rows = summarise_seeds(metrics, selection)
    decimals = settings.table_decimals
    table = summary_table(rows, decimals=decimals)
    _write_outputs(settings, metrics=metrics, per_tile=per_tile, out_json=out_json, out_per_tile=out_per_tile,
                   extra={"summary": rows},
                   tables={out_table: "# Ablation: mean ± sd over training seeds\n\n" + table,
                           out_csv: summary_table(rows, decimals=decimals, csv=True)})
    # the confusion matrices of the main map, the first seed of the full method and of the forest, and the products
    first_seeds = [min((n for n in metrics if n.startswith(f"{v}@")), default=None) for v in ("full", "random_forest")]
    shown = [n for n in metrics if "@" not in n or n in first_seeds]
    confusion_plot({n: metrics[n] for n in shown}, out_confusion_png)
    return table
