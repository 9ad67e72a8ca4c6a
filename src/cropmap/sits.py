"""Satellite image time series per tile: load, cloud-mask, composite, gap-fill.

The maths (`clear_mask`, `composite`, `fill_gaps`) are pure numpy functions; `build_tile_cube`
does the I/O: an odc-stac load of the tile's grid, one composite period at a time so that memory
is bounded by the scenes of one period, not the season.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pystac
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from rasterio.errors import RasterioError
from scipy import ndimage
from tqdm import tqdm

from cropmap.credentials import sign_items
from cropmap.errors import DataError
from cropmap.grid import Tile
from cropmap.io import atomic_path
from cropmap.scenes import SkippedScene, first_line, readable_scenes, with_retries

log = logging.getLogger(__name__)

# a COG is one file: do not list its folder (an extra request per file on remote archives)
os.environ.setdefault("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")

__all__ = ["REFLECTANCE_SCALE", "build_tile_cube", "clear_mask", "composite", "composite_periods", "dask_client",
           "fill_gaps", "open_cube", "read_items_for_tile", "write_cube"]

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
    masked = np.where(clear[:, None] & ~np.isnan(values), values, np.inf).astype(np.float32)
    # +inf sorts last, so the valid observations of each pixel come first
    ordered = _sort_observations(masked)
    valid = np.isfinite(ordered).sum(axis=0)
    lo = np.clip((valid - 1) // 2, 0, None)[None]
    hi = np.clip(valid // 2, 0, None)[None]
    median = 0.5 * (np.take_along_axis(ordered, lo, 0)[0] + np.take_along_axis(ordered, hi, 0)[0])
    median[valid == 0] = np.nan
    return median.astype(np.float32), np.minimum(count, 255).astype(np.uint8)


def _sort_observations(x: np.ndarray) -> np.ndarray:
    """`x` sorted along axis 0. A composite period holds a handful of observations: an odd-even
    transposition network of element-wise min / max over whole images is then several times faster
    than `np.sort`, which sorts millions of tiny arrays one by one."""
    n = x.shape[0]
    if n > 8:
        return np.sort(x, axis=0)
    x = x.copy()
    for step in range(n):
        for i in range(step % 2, n - 1, 2):
            low = np.minimum(x[i], x[i + 1])
            np.maximum(x[i], x[i + 1], out=x[i + 1])
            x[i] = low
    return x


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


def _solar_day(item: pystac.Item) -> dt.date:
    """The item's date in local solar time (how odc-stac groups scenes with groupby="solar_day")."""
    lon = (item.bbox[0] + item.bbox[2]) / 2 if item.bbox else 0.0
    return (item.datetime + dt.timedelta(hours=lon / 15)).date()


def _meets_tile(tile: Tile, halo: int):
    """A test of whether a lon/lat bbox (or none: kept) meets the tile grown by `halo` pixels."""
    from shapely.geometry import box

    footprint = box(*tile.geobox(halo).extent.to_crs("EPSG:4326").boundingbox)
    return lambda bbox: not bbox or box(*bbox[:2], *bbox[-2:]).intersects(footprint)


def read_items_for_tile(path, tile: Tile, *, halo: int = 0) -> list[pystac.Item]:
    """The items of a saved ItemCollection whose bbox meets `tile`; the others are never turned into
    pystac objects, so a tile job's memory barely grows with the area's item count."""
    meets = _meets_tile(tile, halo)
    with open(path) as f:
        features = json.load(f)["features"]
    return [pystac.Item.from_dict(feature, preserve_dict=False) for feature in features if meets(feature.get("bbox"))]


def build_tile_cube(*, items: Sequence[pystac.Item], tile: Tile, settings: dict[str, Any]) -> xr.Dataset:
    """Composited, gap-filled reflectance cube of one tile, grown by `settings["halo_px"]` pixels.

    Scenes that cannot be read are retried, then skipped and listed in the cube's `skipped_scenes`
    attribute; fewer than `settings["min_scenes"]` readable scenes is a `DataError`.
    """
    import odc.stac

    from cropmap.bands import resolve_bands

    bands: list[str] = list(settings["bands"])
    scl_band: str = settings["scl_band"]
    halo = int(settings.get("halo_px", 0))
    retry = {"retries": int(settings.get("read_retries", 3)), "backoff_s": float(settings.get("read_backoff_s", 1.0))}
    # GDAL retries HTTP 429/5xx itself with exponential backoff; its cache would answer our own
    # retries of such a request with the cached failure
    os.environ["GDAL_HTTP_MAX_RETRY"] = str(retry["retries"])
    os.environ["GDAL_HTTP_RETRY_DELAY"] = str(retry["backoff_s"])
    # signed in memory only: saved items keep unsigned URLs (see cropmap.credentials)
    meets = _meets_tile(tile, halo)
    items = sign_items([item for item in items if meets(item.bbox)], method=settings.get("sign", "none"))
    if not items:
        raise DataError(f"tile {tile.id}: no scene covers it")
    # the providers' asset keys for the configured bands ("B04" may be "red")
    keys = resolve_bands(items[0], [*bands, scl_band])
    for item in items[1:]:
        if resolve_bands(item, [*bands, scl_band]) != keys:
            raise DataError(f"items {items[0].id} and {item.id} name their bands differently; search one "
                            "collection of one provider per area")
    readable, skipped = readable_scenes(items, list(keys.values()), **retry)
    periods = composite_periods(settings["season"], settings["interval_days"])
    geobox = tile.geobox(halo)
    resampling = {"*": "bilinear", keys[scl_band]: "nearest"}
    data = odc.stac.load(
        readable, bands=list(keys.values()), geobox=geobox, groupby="solar_day", resampling=resampling,
        chunks={"x": 2048, "y": 2048}, fail_on_error=True,
        # DN 0 is no data in every L2A band and in SCL, whether or not the catalog says so (Planetary
        # Computer items publish no raster:bands): without it, bilinear blends scene edges with 0
        stac_cfg={"*": {"assets": {"*": {"nodata": 0}}}},
    ) if readable else None
    ny, nx = geobox.shape
    composites = np.full((len(periods), len(bands), ny, nx), np.nan, np.float32)
    counts = np.zeros((len(periods), ny, nx), np.uint8)
    scenes_used = 0
    if data is not None:
        data = data.rename({key: band for band, key in keys.items() if key != band})
        day_items: dict[dt.date, list[pystac.Item]] = {}
        for item in readable:
            day_items.setdefault(_solar_day(item), []).append(item)
        days = [dt.date.fromisoformat(str(np.datetime_as_string(t, unit="D"))) for t in data.time.values]
        obs_dates = np.array([np.datetime64(day) for day in days])
        for p, (start, stop) in enumerate(tqdm(periods, desc=f"tile {tile.id}", unit="period")):
            sel = np.flatnonzero((obs_dates >= np.datetime64(start)) & (obs_dates < np.datetime64(stop)))
            if sel.size == 0:
                continue
            chunk, kept, failed = _read_period(data, sel, days, day_items, retry)
            skipped += failed
            if not kept:
                continue
            scenes_used += sum(len(day_items.get(days[t], [])) for t in kept)
            first_items = [day_items.get(days[t], readable)[0] for t in kept]
            composites[p], counts[p] = _composite_chunk(chunk, first_items, bands, keys, scl_band, settings)
    if scenes_used < int(settings.get("min_scenes", 1)):
        raise DataError(
            f"tile {tile.id}: {scenes_used} readable scenes of {len(items)} ({len(skipped)} skipped: "
            f"{'; '.join(f'{s.item_id} ({s.reason})' for s in skipped[:3])}{' ...' if len(skipped) > 3 else ''}), "
            f"fewer than sits.min_scenes = {settings.get('min_scenes')}")
    never_observed = counts.sum(axis=0) == 0
    filled = fill_gaps(composites, axis=0)
    if never_observed.all():
        log.warning("tile %s has no clear observation at all: written as no data and flagged", tile.id)
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
               "scenes_found": len(items), "scenes_loaded": scenes_used, "scenes_skipped": len(skipped),
               "skipped_scenes": json.dumps([s.as_dict() for s in skipped]),
               "no_clear_observation": int(never_observed.all())},
    )
    cube = cube.rio.write_crs(tile.crs).rio.write_transform(geobox.affine)
    return cube


def _read_period(data: xr.Dataset, sel: np.ndarray, days: list[dt.date],
                 day_items: dict[dt.date, list[pystac.Item]], retry: dict[str, Any]):
    """(the period's readable time steps in memory, their indices, the scenes skipped as unreadable).

    The whole period is read at once; when that fails, each solar day is read alone (with retries) so
    that only the days that fail are dropped.
    """
    try:
        chunk = with_retries(lambda: data.isel(time=sel).compute(), what=f"period of {days[sel[0]]}", **retry)
        return chunk, list(sel), []
    except (OSError, RasterioError) as err:
        log.warning("reading the period of %s failed (%s); reading its days one by one", days[sel[0]], first_line(err))
    good, failed = [], []
    for t in sel:
        try:
            with_retries(lambda t=t: data.isel(time=[t]).compute(), what=f"scenes of {days[t]}", **retry)
            good.append(t)
        except (OSError, RasterioError) as err:
            reason = f"cannot be read after {retry['retries']} retries: {first_line(err)}"
            for item in day_items.get(days[t], []):
                log.warning("scene %s skipped: %s", item.id, reason)
                failed.append(SkippedScene(item.id, "*", reason))
    if not good:
        return None, [], failed
    return data.isel(time=good).compute(), good, failed


def _composite_chunk(chunk: xr.Dataset, step_items: list[pystac.Item], bands: list[str], keys: dict[str, str],
                     scl_band: str, settings: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Median composite of one period's loaded time steps (DN scaled to reflectance per scene)."""
    scl = chunk[scl_band].values
    clear = clear_mask(scl, masked_classes=settings["masked_scl_classes"], dilation_px=settings["cloud_dilation_px"])
    n, ny, nx = scl.shape
    values = np.empty((n, len(bands), ny, nx), np.float32)
    for b, band in enumerate(bands):
        dn = chunk[band].values.astype(np.float32)
        for k, item in enumerate(step_items):
            scale, offset = reflectance_scaling(item, keys[band])
            values[k, b] = np.where(dn[k] == 0, np.nan, dn[k] * scale + offset)
    clear &= ~np.isnan(values).any(axis=1)
    return composite(values, clear)


def _set_environment(variables: dict[str, str]) -> None:
    os.environ.update(variables)


@contextlib.contextmanager
def dask_client(address: str) -> Iterator[Any]:
    """Run dask computations inside the block on the distributed scheduler at `address` (for
    example one started by dask-jobqueue on SLURM); an empty address keeps dask's local threads."""
    if not address:
        yield None
        return
    try:
        from distributed import Client
    except ImportError:
        raise DataError("sits.dask_scheduler needs the `distributed` package: pip install -e '.[dask]'") from None
    try:
        client = Client(address, timeout="30s")
    except OSError as err:
        raise DataError(f"cannot reach the dask scheduler {address}: {err}") from None
    log.info("dask computations run on %s (%d workers)", address, len(client.scheduler_info()["workers"]))
    # the workers open the assets themselves: they need the same GDAL retry settings
    client.run(_set_environment, {k: v for k, v in os.environ.items() if k.startswith(("GDAL_", "CPL_"))})
    try:
        yield client
    finally:
        client.close()


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
