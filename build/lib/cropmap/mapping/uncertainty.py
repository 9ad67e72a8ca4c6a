"""Where the map is unsure, and where to look next (active learning, as sits' `sits_uncertainty`
and `sits_uncertainty_sampling`).

- `uncertainty_percent`: how close a crop probability p is to the map's decision threshold t, in
  percent: 100 % at p = t, falling linearly to 0 % at p = 0 and p = 1 (the margin to the decision,
  scaled on each side). With t = 0.5 it is sits' margin uncertainty, 100 - |2p - 100|; the map's
  threshold is calibrated (often not 0.5), and the pixels worth a look are those near it.
- `write_uncertainty`: the area's uncertainty COG from its probability COG, window by window.
- `suggest_points`: N pixel centres where the map is least certain, at least D px apart, with the
  map's class shares among them, as CSV and GeoPackage with an empty `reference` column to fill in.
"""

from __future__ import annotations

import csv
import json
from typing import Any

import numpy as np
import rasterio

from cropmap.conventions import DECISION_THRESHOLD_TAG, NODATA
from cropmap.io import atomic_path, copy_as_cog, iter_windows
from cropmap.settings import SuggestSettings

__all__ = ["select_apart", "suggest_points", "uncertainty_percent", "write_uncertainty"]


def uncertainty_percent(probability_pct: np.ndarray, *, threshold: float = 0.5) -> np.ndarray:
    """Uncertainty (uint8 percent) of crop probabilities in percent, against the decision
    `threshold` (0-1); NODATA stays NODATA."""
    p, t = probability_pct.astype(np.float64), 100 * threshold
    side = np.where(p < t, t, 100 - t)
    out = np.round(100 * (1 - np.abs(p - t) / np.maximum(side, 1e-9))).clip(0, 100).astype(np.uint8)
    out[probability_pct == NODATA] = NODATA
    return out


def write_uncertainty(*, probability_path, out_path, window: int = 2048) -> None:
    """The uncertainty COG (percent, with overviews) of a probability COG, atomically; memory is
    one window, whatever the area."""
    with rasterio.open(probability_path) as src:
        threshold = float(src.tags().get(DECISION_THRESHOLD_TAG, 0.5))
        profile = {"driver": "GTiff", "height": src.height, "width": src.width, "count": 1, "dtype": "uint8",
                   "crs": src.crs, "transform": src.transform, "nodata": NODATA, "tiled": True,
                   "blockxsize": 256, "blockysize": 256, "compress": "DEFLATE", "bigtiff": "IF_SAFER"}
        with atomic_path(out_path) as tmp:
            plain = tmp.with_name(tmp.name + ".plain.tif")
            try:
                with rasterio.open(plain, "w", **profile) as dst:
                    for win in iter_windows(src.height, src.width, size=window):
                        dst.write(uncertainty_percent(src.read(1, window=win), threshold=threshold), 1, window=win)
                    dst.set_band_description(1, "cropland uncertainty (%: 100 at the decision threshold)")
                    dst.update_tags(units="percent", producer="cropmap", measure="margin to the decision threshold",
                                    **{DECISION_THRESHOLD_TAG: f"{threshold:.6g}"})
                copy_as_cog(plain, tmp, overview_resampling="average")
            finally:
                plain.unlink(missing_ok=True)
                plain.with_name(plain.name + ".aux.xml").unlink(missing_ok=True)


def select_apart(rows: np.ndarray, cols: np.ndarray, *, n: int, min_distance_px: float) -> np.ndarray:
    """Indices of at most `n` of the candidates (taken in the order given, best first) that are all
    at least `min_distance_px` apart (Euclidean, in pixels): greedy, with a grid of cells of that size
    so that each candidate is checked against its neighbours only."""
    chosen: list[int] = []
    cell = max(float(min_distance_px), 1.0)
    grid: dict[tuple[int, int], list[int]] = {}
    for i in range(len(rows)):
        r, c = rows[i], cols[i]
        key = (int(r // cell), int(c // cell))
        near = (j for dr in (-1, 0, 1) for dc in (-1, 0, 1) for j in grid.get((key[0] + dr, key[1] + dc), ()))
        if min_distance_px > 0 and any((rows[j] - r) ** 2 + (cols[j] - c) ** 2 < min_distance_px**2 for j in near):
            continue
        chosen.append(i)
        grid.setdefault(key, []).append(i)
        if len(chosen) == n:
            break
    return np.asarray(chosen, dtype=np.int64)


def suggest_points(*, settings: SuggestSettings, uncertainty_path, map_path, probability_path, out_csv, out_gpkg,
                   out_json, window: int = 2048) -> dict[str, Any]:
    """`settings.points` pixel centres where the map is least certain, `settings.min_distance_px`
    apart, ties broken at random (`settings.seed`); written as CSV, GeoPackage (map CRS) and a
    JSON summary with the map's class shares among them. Memory: one window plus the candidates."""
    from pyproj import Transformer

    from cropmap.assessment.sampling import write_points_gpkg

    rng = np.random.default_rng(settings.seed)
    keep = max(settings.points * settings.candidates_per_point, settings.points)
    best_key = np.empty(0)
    best_rc = np.empty((0, 2), np.int64)
    with rasterio.open(uncertainty_path) as src:
        transform, crs, shape = src.transform, src.crs, (src.height, src.width)
        for win in iter_windows(src.height, src.width, size=window):
            u = src.read(1, window=win)
            rows, cols = np.nonzero(u != NODATA)
            # the uncertainty orders; a random fraction below one step of it breaks the ties
            key = u[rows, cols].astype(np.float64) + rng.uniform(0, 0.999, rows.size)
            if key.size > keep:
                top = np.argpartition(-key, keep - 1)[:keep]
                key, rows, cols = key[top], rows[top], cols[top]
            best_key = np.concatenate([best_key, key])
            best_rc = np.concatenate([best_rc, np.stack([rows + win.row_off, cols + win.col_off], axis=1)])
            if best_key.size > keep:
                top = np.argpartition(-best_key, keep - 1)[:keep]
                best_key, best_rc = best_key[top], best_rc[top]
    order = np.argsort(-best_key, kind="stable")
    candidates = best_rc[order]
    chosen = candidates[select_apart(candidates[:, 0], candidates[:, 1], n=settings.points,
                                     min_distance_px=settings.min_distance_px)]
    values = {}
    for name, path in (("uncertainty_pct", uncertainty_path), ("map_class", map_path),
                       ("probability_pct", probability_path)):
        with rasterio.open(path) as src:
            if (src.height, src.width) != shape:
                raise ValueError(f"{path} is {src.height} x {src.width} px, the uncertainty {shape[0]} x {shape[1]}")
            values[name] = np.array([src.read(1, window=((r, r + 1), (c, c + 1)))[0, 0] for r, c in chosen], np.int64)
    xs = transform.c + transform.a * (chosen[:, 1] + 0.5)  # pixel centres (north-up grids)
    ys = transform.f + transform.e * (chosen[:, 0] + 0.5)
    lons, lats = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    points = [{"id": i, "x": float(x), "y": float(y), "lon": float(lon), "lat": float(lat),
               "uncertainty_pct": int(values["uncertainty_pct"][i]), "probability_pct": int(values["probability_pct"][i]),
               "map_class": int(values["map_class"][i]), "reference": ""}
              for i, (x, y, lon, lat) in enumerate(zip(xs, ys, np.atleast_1d(lons), np.atleast_1d(lats)))]
    with atomic_path(out_csv) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(points[0]) if points else ["id", "x", "y", "lon", "lat", "reference"])
        writer.writeheader()
        writer.writerows(points)
    write_points_gpkg(points, crs, out_gpkg, fields=("id", "lon", "lat", "uncertainty_pct", "probability_pct",
                                                     "map_class", "reference"), layer="suggested")
    mapped = np.array([p["map_class"] for p in points])
    summary = {"points": len(points), "asked": settings.points, "min_distance_px": settings.min_distance_px,
               "map_class_shares": {"crop": float(np.mean(mapped == 1)) if len(points) else 0.0,
                                    "non-crop": float(np.mean(mapped == 0)) if len(points) else 0.0},
               "uncertainty_pct": {"min": int(values["uncertainty_pct"].min()) if len(points) else None,
                                   "mean": float(values["uncertainty_pct"].mean()) if len(points) else None}}
    with atomic_path(out_json) as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    return summary
