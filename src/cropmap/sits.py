"""Satellite image time series per tile: load, cloud-mask, composite, gap-fill.

The maths (`clear_mask`, `composite`, `fill_gaps`) are pure numpy functions; `build_tile_cube`
does the I/O: an odc-stac load of the tile's grid, one composite period at a time so that memory
is bounded by the scenes of one period, not the season.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pystac
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from scipy import ndimage
from tqdm import tqdm

from cropmap.errors import DataError
from cropmap.grid import Tile
from cropmap.io import atomic_path

log = logging.getLogger(__name__)

__all__ = ["composite_periods", "clear_mask", "composite", "fill_gaps", "build_tile_cube", "open_cube",
           "REFLECTANCE_SCALE"]

REFLECTANCE_SCALE = 10000  # stored int16 = reflectance * 10000


def composite_periods(season: dict[str, str], interval_days: int) -> list[tuple[dt.date, dt.date]]:
    """Consecutive [start, end) periods of `interval_days` covering the season (end inclusive)."""
    start = dt.date.fromisoformat(season["start"])
    end = dt.date.fromisoformat(season["end"]) + dt.timedelta(days=1)
    periods = []
    while start < end:
        stop = min(start + dt.timedelta(days=interval_days), end)
        periods.append((start, stop))
        start = stop
    return periods


def clear_mask(scl: np.ndarray, *, masked_classes: Sequence[int], dilation_px: int = 0) -> np.ndarray:
    """True where an observation is clear: SCL not in `masked_classes`, after growing the masked
    area by `dilation_px` pixels in the two image axes (the last two of `scl`)."""
    masked = np.isin(scl, masked_classes)
    if dilation_px > 0:
        structure = np.zeros((3,) * masked.ndim, bool)
        structure[(1,) * (masked.ndim - 2)] = ndimage.generate_binary_structure(2, 1)
        masked = ndimage.binary_dilation(masked, structure=structure, iterations=dilation_px)
    return ~masked


def composite(values: np.ndarray, clear: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median of clear observations.

    values: (obs, bands, y, x) float; clear: (obs, y, x) bool.
    Returns (bands, y, x) float32 with NaN where no clear observation, and (y, x) clear counts.
    """
    count = clear.sum(axis=0)
    if values.shape[0] == 0:
        return np.full(values.shape[1:], np.nan, np.float32), count.astype(np.uint8)
    masked = np.where(clear[:, None], values, np.nan).astype(np.float32)
    # NaN sorts last, so the valid observations of each pixel come first
    ordered = np.sort(masked, axis=0)
    valid = (~np.isnan(ordered)).sum(axis=0)
    lo = np.clip((valid - 1) // 2, 0, None)[None]
    hi = np.clip(valid // 2, 0, None)[None]
    median = 0.5 * (np.take_along_axis(ordered, lo, 0)[0] + np.take_along_axis(ordered, hi, 0)[0])
    median[valid == 0] = np.nan
    return median.astype(np.float32), np.minimum(count, 255).astype(np.uint8)


def fill_gaps(cube: np.ndarray, *, axis: int = 0) -> np.ndarray:
    """Fill NaNs by linear interpolation along `axis` (time); before the first and after the last
    valid value, the nearest valid value is repeated. All-NaN series stay NaN."""
    data = np.moveaxis(np.asarray(cube, dtype=np.float32), axis, 0)
    n = data.shape[0]
    prev_val = np.empty_like(data)
    prev_idx = np.empty(data.shape, np.int32)
    last_val = np.full(data.shape[1:], np.nan, np.float32)
    last_idx = np.full(data.shape[1:], -1, np.int32)
    for t in range(n):  # forward: last valid value and its index
        ok = ~np.isnan(data[t])
        last_val = np.where(ok, data[t], last_val)
        last_idx = np.where(ok, t, last_idx)
        prev_val[t], prev_idx[t] = last_val, last_idx
    filled = np.empty_like(data)
    next_val = np.full(data.shape[1:], np.nan, np.float32)
    next_idx = np.full(data.shape[1:], -1, np.int32)
    for t in range(n - 1, -1, -1):  # backward: next valid value, then interpolate
        ok = ~np.isnan(data[t])
        next_val = np.where(ok, data[t], next_val)
        next_idx = np.where(ok, t, next_idx)
        both = (prev_idx[t] >= 0) & (next_idx >= 0) & (next_idx > prev_idx[t])
        w = np.where(both, (t - prev_idx[t]) / np.maximum(next_idx - prev_idx[t], 1), 0.0)
        interp = prev_val[t] + w * (next_val - prev_val[t])
        filled[t] = np.where(ok, data[t], np.where(both, interp, np.where(prev_idx[t] >= 0, prev_val[t], next_val)))
    return np.moveaxis(filled, 0, axis)


def reflectance_scaling(item: pystac.Item, asset_key: str) -> tuple[float, float]:
    """(scale, offset) turning the asset's DN into surface reflectance, from the item's metadata.

    `raster:bands` scale/offset win; without them, DN * 1e-4, and the -0.1 offset of processing
    baseline 04.00 and later (catalogs that do not rewrite DNs and do not publish the offset).
    """
    asset = item.assets.get(asset_key)
    bands = (asset.extra_fields.get("raster:bands") if asset else None) or [{}]
    scale, offset = bands[0].get("scale"), bands[0].get("offset")
    if scale is not None:
        return float(scale), float(offset or 0.0)
    baseline = str(item.properties.get("s2:processing_baseline", "00.00"))
    try:
        after_0400 = tuple(int(p) for p in baseline.split(".")) >= (4, 0)
    except ValueError:
        after_0400 = False
    return 1e-4, -0.1 if after_0400 else 0.0


def _solar_day_groups(items: Sequence[pystac.Item], times: np.ndarray) -> list[pystac.Item]:
    """For each loaded time step, one item of that solar day (for its scaling metadata)."""
    by_day: dict[dt.date, pystac.Item] = {}
    for item in items:
        lon = item.bbox[0] / 2 + item.bbox[2] / 2 if item.bbox else 0.0
        solar = (item.datetime + dt.timedelta(hours=lon / 15)).date()
        by_day.setdefault(solar, item)
    out = []
    for t in times:
        day = dt.date.fromisoformat(str(np.datetime_as_string(t, unit="D")))
        out.append(by_day.get(day) or min(by_day.items(), key=lambda kv: abs((kv[0] - day).days))[1])
    return out


def build_tile_cube(
    *, items: Sequence[pystac.Item], tile: Tile, settings: dict[str, Any], halo: int = 0
) -> xr.Dataset:
    """Composited, gap-filled reflectance cube of one tile (grown by `halo` pixels)."""
    import odc.stac

    from cropmap.bands import resolve_bands

    bands: list[str] = list(settings["bands"])
    scl_band: str = settings["scl_band"]
    if not items:
        raise DataError(f"tile {tile.id}: no scene to load")
    # the providers' asset keys for the configured bands ("B04" may be "red")
    keys = resolve_bands(items[0], [*bands, scl_band])
    for item in items[1:]:
        if resolve_bands(item, [*bands, scl_band]) != keys:
            raise DataError(f"items {items[0].id} and {item.id} name their bands differently; search one "
                            "collection of one provider per area")
    periods = composite_periods(settings["season"], settings["interval_days"])
    geobox = tile.geobox(halo)
    resampling = {"*": "bilinear", keys[scl_band]: "nearest"}
    data = odc.stac.load(
        items, bands=list(keys.values()), geobox=geobox, groupby="solar_day", resampling=resampling,
        chunks={"x": 2048, "y": 2048}, fail_on_error=False,
    )
    data = data.rename({key: band for band, key in keys.items() if key != band})
    times = data.time.values
    day_items = _solar_day_groups(items, times)
    obs_dates = np.array([np.datetime64(str(np.datetime_as_string(t, unit="D"))) for t in times])
    ny, nx = geobox.shape
    composites = np.full((len(periods), len(bands), ny, nx), np.nan, np.float32)
    counts = np.zeros((len(periods), ny, nx), np.uint8)
    for p, (start, stop) in enumerate(tqdm(periods, desc=f"tile {tile.id}", unit="period")):
        sel = np.flatnonzero((obs_dates >= np.datetime64(start)) & (obs_dates < np.datetime64(stop)))
        if sel.size == 0:
            continue
        chunk = data.isel(time=sel).compute()
        scl = chunk[scl_band].values
        clear = clear_mask(scl, masked_classes=settings["masked_scl_classes"],
                           dilation_px=settings["cloud_dilation_px"])
        values = np.empty((sel.size, len(bands), ny, nx), np.float32)
        for b, band in enumerate(bands):
            dn = chunk[band].values.astype(np.float32)
            for k, t in enumerate(sel):
                scale, offset = reflectance_scaling(day_items[t], keys[band])
                values[k, b] = np.where(dn[k] == 0, np.nan, dn[k] * scale + offset)
        clear &= ~np.isnan(values).any(axis=1)
        composites[p], counts[p] = composite(values, clear)
    never_observed = counts.sum(axis=0) == 0
    filled = fill_gaps(composites, axis=0)
    if never_observed.all():
        log.warning("tile %s has no clear observation at all: written as no data", tile.id)
    reflectance = np.where(np.isnan(filled), -9999, np.round(filled * REFLECTANCE_SCALE)).astype(np.int16)
    centres = [np.datetime64(start + (stop - start) / 2) for start, stop in periods]
    coords = {"time": np.array(centres, dtype="datetime64[ns]"), "band": bands,
              "y": geobox.coords["y"].values, "x": geobox.coords["x"].values}
    cube = xr.Dataset(
        {
            "reflectance": (("time", "band", "y", "x"), reflectance,
                            {"scale_factor_note": f"reflectance * {REFLECTANCE_SCALE}", "nodata": -9999,
                             "units": "1"}),
            "clear_count": (("time", "y", "x"), counts, {"long_name": "clear observations in the period"}),
            "never_observed": (("y", "x"), never_observed.astype(np.uint8),
                               {"long_name": "1 where no clear observation in the season"}),
        },
        coords=coords,
        attrs={"tile": tile.id, "halo_px": halo, "interval_days": settings["interval_days"],
               "scenes_loaded": len(times)},
    )
    cube = cube.rio.write_crs(tile.crs).rio.write_transform(geobox.affine)
    return cube


def write_cube(cube: xr.Dataset, path) -> None:
    encoding = {name: {"zlib": True, "complevel": 4} for name in cube.data_vars}
    with atomic_path(path) as tmp:
        cube.to_netcdf(tmp, engine="netcdf4", encoding=encoding)


def open_cube(path) -> xr.Dataset:
    """Open a tile cube written by `build_tile_cube` (loads it in memory)."""
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            return ds.load()
    except OSError as err:
        raise DataError(f"cannot read the time-series cube {path}: {err}") from None
