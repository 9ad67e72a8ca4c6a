"""The accuracy and area estimate of a map from a stratified random sample (Olofsson et al. 2014,
Remote Sensing of Environment 148): the sample's size and draw (strata = map classes), its labels
(interpreted by people, or read from a reference raster), and the stratified estimator.

Every function reads the map window by window: memory does not grow with the area.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Sequence
from typing import Any

import numpy as np
import rasterio

from cropmap.conventions import CLASS_NAMES
from cropmap.errors import DataError
from cropmap.io import atomic_path, write_json
from cropmap.settings import AreaSettings, SampleSettings

__all__ = ["area_estimate", "draw_sample", "estimate_area", "label_sample_from_raster", "map_class_counts", "write_points_gpkg",
           "read_labelled_sample", "sample_map", "sample_sizes", "stratified_estimate"]

def sample_map(*, settings: SampleSettings, map_path, out_csv, out_gpkg) -> list[dict[str, Any]]:
    """The `sample` step: sizes for the target standard error, then the stratified draw."""
    counts = map_class_counts(map_path).astype(float)
    if counts.sum() == 0:
        raise DataError(f"sample: the map {map_path} has no mapped pixel")
    sizes = sample_sizes(counts / counts.sum(), expected_users_accuracy=settings.expected_users_accuracy,
                         target_se=settings.target_se, min_per_stratum=settings.min_per_stratum)
    return draw_sample(map_path=map_path, sizes=sizes, seed=settings.seed, out_csv=out_csv, out_gpkg=out_gpkg)


def estimate_area(*, settings: AreaSettings, map_path, sample_csv, labelled_out, out_json, out_csv) -> dict[str, Any]:
    """The `area` step: the sample labelled by people (`labelled_sample`, copied to `labelled_out`)
    or from the reference raster, then the stratified estimate of accuracy and area."""
    labelled = settings.labelled_sample
    if labelled:
        with atomic_path(labelled_out) as tmp:
            shutil.copyfile(labelled, tmp)
    else:
        ref = settings.reference
        if not ref:
            raise DataError("area: give assess.labelled_sample (the interpreted sample) or a reference raster")
        with rasterio.open(map_path) as src:
            map_crs = src.crs
        label_sample_from_raster(sample_csv, map_crs=map_crs, reference_path=ref.path,
                                 crop_classes=ref.crop_classes, out_csv=labelled_out)
    return area_estimate(map_path=map_path, labelled_sample=labelled_out, out_json=out_json, out_csv=out_csv)


def sample_sizes(mapped_share: Sequence[float], *, expected_users_accuracy: Sequence[float],
                 target_se: float, min_per_stratum: int) -> list[int]:
    """Stratified sample sizes for a target standard error of overall accuracy (Olofsson et al.
    2014, eq. 13: n = (sum W_i S_i / S(O))^2 with S_i = sqrt(U_i (1 - U_i))), allocated in
    proportion to area, then raised to at least `min_per_stratum` per stratum."""
    w = np.asarray(mapped_share, float)
    s = np.sqrt(np.asarray(expected_users_accuracy) * (1 - np.asarray(expected_users_accuracy)))
    total = int(np.ceil((np.sum(w * s) / target_se) ** 2))
    return [int(max(min_per_stratum, round(total * wi))) for wi in w]


def _window_class_counts(src, size: int = 2048) -> tuple[list, np.ndarray]:
    """The windows of a class map (`cropmap.io.iter_windows`) and (n_windows, 2) pixels of class 0 and 1 in each."""
    from cropmap.io import iter_windows

    windows = list(iter_windows(src.height, src.width, size=size))
    counts = np.zeros((len(windows), 2), np.int64)
    for w, window in enumerate(windows):
        classes = src.read(1, window=window)
        counts[w] = np.sum(classes == 0), np.sum(classes == 1)
    return windows, counts


def map_class_counts(map_path) -> np.ndarray:
    """Pixels of class 0 (non-crop) and 1 (crop) of a class map, read window by window."""
    with rasterio.open(map_path) as src:
        return _window_class_counts(src)[1].sum(axis=0)


def draw_sample(*, map_path, sizes: Sequence[int], seed: int, out_csv, out_gpkg,
                window: int = 2048) -> list[dict[str, Any]]:
    """A stratified random sample of pixel centres, strata = map classes (0, 1); written as CSV and
    GeoPackage with an empty `reference` column for photo-interpretation.

    Each stratum's points are drawn without replacement among all its pixels, as ranks in the
    stratum; two passes over the map's windows (count, then pick) keep memory to one window."""
    from pyproj import Transformer

    rng = np.random.default_rng(seed)
    points = []
    with rasterio.open(map_path) as src:
        transform, crs = src.transform, src.crs
        windows, counts = _window_class_counts(src, window)
        to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        for stratum, n in enumerate(sizes):
            total = int(counts[:, stratum].sum())
            if total == 0:
                continue
            ranks = np.sort(rng.choice(total, size=min(n, total), replace=False))
            starts = np.concatenate([[0], np.cumsum(counts[:, stratum])])
            for w in np.unique(np.searchsorted(starts, ranks, side="right") - 1):
                win = windows[w]
                here = ranks[(ranks >= starts[w]) & (ranks < starts[w + 1])] - starts[w]
                flat = np.flatnonzero(src.read(1, window=win).ravel() == stratum)[here]
                rows, cols = np.unravel_index(flat, (win.height, win.width))
                xs, ys = transform * (cols + win.col_off + 0.5, rows + win.row_off + 0.5)
                lons, lats = to_lonlat.transform(xs, ys)
                for x, y, lon, lat in zip(xs, ys, lons, lats):
                    points.append({"id": len(points), "stratum": stratum, "map_class": stratum, "x": float(x),
                                   "y": float(y), "lon": float(lon), "lat": float(lat), "reference": ""})
    fields = ["id", "stratum", "map_class", "x", "y", "lon", "lat", "reference"]
    with atomic_path(out_csv) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(points)
    write_points_gpkg(points, crs, out_gpkg, fields=("id", "stratum", "lon", "lat", "reference"), layer="sample")
    return points


def write_points_gpkg(points: Sequence[dict[str, Any]], crs, path, *, fields: Sequence[str], layer: str) -> None:
    """Points (dicts with `x`, `y` in `crs` and the `fields`) as a GeoPackage layer, atomically."""
    import pyogrio.raw
    import shapely

    geometry = shapely.to_wkb(shapely.points([(p["x"], p["y"]) for p in points]))
    field_data = []
    for name in fields:
        values = [p[name] for p in points]
        kind = (object if any(isinstance(v, str) for v in values)
                else np.int32 if all(isinstance(v, (int, np.integer)) for v in values) else np.float64)
        field_data.append(np.array(values, dtype=kind))
    with atomic_path(path) as tmp:
        pyogrio.raw.write(str(tmp), geometry, field_data, list(fields), driver="GPKG", geometry_type="Point",
                          crs=crs.to_wkt(), layer=layer)


def label_sample_from_raster(sample_csv, *, map_crs, reference_path: str, crop_classes: Sequence[int],
                             out_csv) -> None:
    """Fill the `reference` column from a reference raster (for the demo, in place of a person)."""
    from rasterio.warp import transform as warp_transform

    with open(sample_csv) as f:
        points = list(csv.DictReader(f))
    with rasterio.open(reference_path) as src:
        xs, ys = warp_transform(map_crs, src.crs, [float(p["x"]) for p in points], [float(p["y"]) for p in points])
        values = [v[0] for v in src.sample(zip(xs, ys))]
    for p, v in zip(points, values):
        p["reference"] = int(v in crop_classes)
    with atomic_path(out_csv) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(points[0]))
        writer.writeheader()
        writer.writerows(points)


def read_labelled_sample(path) -> np.ndarray:
    """Counts matrix (rows = stratum / map class, columns = reference class) of a labelled sample.

    The `reference` column must hold 0 (non-crop) or 1 (crop) for every point."""
    counts = np.zeros((2, 2), int)
    with open(path) as f:
        for row in csv.DictReader(f):
            ref = str(row.get("reference", "")).strip()
            if ref not in ("0", "1"):
                raise DataError(f"{path}: point {row.get('id')} has reference {ref!r}; expected 0 (non-crop) or 1 (crop)")
            counts[int(row["stratum"]), int(ref)] += 1
    return counts


def area_estimate(*, map_path, labelled_sample, out_json, out_csv) -> dict[str, Any]:
    """Stratified estimate of accuracy and cropland area (ha) with 95 % confidence intervals."""
    with rasterio.open(map_path) as src:
        pixel_ha = abs(src.transform.a * src.transform.e) / 10_000
    mapped_ha = [float(n * pixel_ha) for n in map_class_counts(map_path)]
    counts = read_labelled_sample(labelled_sample)
    est = stratified_estimate(counts, mapped_ha)
    result = {"classes": list(CLASS_NAMES), "sample_counts": counts.tolist(), "mapped_area_ha": mapped_ha, **est}
    write_json(out_json, result)
    with atomic_path(out_csv) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "mapped area (ha)", "estimated area (ha)", "95% CI (ha)", "user's accuracy",
                         "producer's accuracy"])
        for k, name in enumerate(CLASS_NAMES):
            writer.writerow([name, f"{mapped_ha[k]:.1f}", f"{est['area'][k]:.1f}", f"± {est['area_ci95'][k]:.1f}",
                             f"{est['users_accuracy'][k]:.3f} ± {1.96 * est['users_accuracy_se'][k]:.3f}",
                             f"{est['producers_accuracy'][k]:.3f} ± {1.96 * est['producers_accuracy_se'][k]:.3f}"])
        writer.writerow(["overall accuracy", "", "", "", f"{est['overall_accuracy']:.3f} ± "
                         f"{1.96 * est['overall_accuracy_se']:.3f}", ""])
    return result


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
