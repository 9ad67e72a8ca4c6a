"""Satellite image time series per tile: load, cloud-mask, composite, gap-fill, store.

`build_tile_cube` reads the scenes with odc-stac (`cropmap.acquisition.scenes`' checked reader), one batch of
composite periods at a time so that memory is bounded by a few periods' scenes, not the season; the
maths are in `cropmap.acquisition.compositing` and `cropmap.acquisition.resampling`, the file in `cropmap.acquisition.cube`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pystac
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from rasterio.errors import RasterioError
from tqdm import tqdm

from cropmap.acquisition.cloudmask import check_csmask, csmask_bands, csmask_masked, scl_masked
from cropmap.acquisition.credentials import sign_items
from cropmap.acquisition.compositing import composite, composite_dn, composite_periods, fill_gaps, grown_mask, in_blocks
from cropmap.conventions import REFLECTANCE_FILL, REFLECTANCE_SCALE
from cropmap.errors import DataError
from cropmap.grid import Tile
from cropmap.acquisition.resampling import nearest_indices, resample_bilinear
from cropmap.settings import SitsSettings
from cropmap.acquisition.scenes import AssetMismatch, SkippedScene, first_line, is_missing_file, with_retries

log = logging.getLogger(__name__)

__all__ = ["build_tile_cube", "dask_client", "read_items_for_tile", "read_threads", "reflectance_scaling", "tile_cube_step"]

# bytes of scene pixels read in one go (56 time steps of a 512 px tile, 14 of a 1,024 px one): memory
# stays bounded, and batches are few, since the last reads of each batch leave most read threads idle
# (over HTTP, each batch ends with its slowest round trips: benchmarks/sits_http.py)
READ_BATCH_BYTES = 160 * 2**20


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


def build_tile_cube(*, items: Sequence[pystac.Item], tile: Tile, settings: SitsSettings) -> xr.Dataset:
    """Composited, gap-filled reflectance cube of one tile, grown by `settings.halo_px` pixels.

    Bands are read on their native grid: those sampled twice as coarse as the tile (the 20 m bands
    and SCL of a 10 m tile) are cloud-masked and composited at that resolution, then interpolated
    bilinearly onto the tile grid once per composite instead of once per scene. Scenes that cannot
    be read are retried, then skipped and listed in the cube's `skipped_scenes` attribute; fewer than
    `settings.min_scenes` readable scenes is a `DataError`.
    """
    sources = _tile_sources(items, tile, settings)
    periods = composite_periods(settings.season, settings.interval_days)
    composites, counts, scenes_used, skipped = _composite_all(sources, periods, tile_id=tile.id)
    if scenes_used < settings.min_scenes:
        raise DataError(
            f"tile {tile.id}: {scenes_used} readable scenes of {len(sources.items)} ({len(skipped)} skipped: "
            f"{'; '.join(f'{s.item_id} ({s.reason})' for s in skipped[:3])}{' ...' if len(skipped) > 3 else ''}), "
            f"fewer than sits.min_scenes = {settings.min_scenes}")
    for scene in skipped:
        log.warning("scene %s skipped: %s", scene.item_id, scene.reason)
    reflectance = _stored_reflectance(composites, sources)
    return _cube_dataset(reflectance, counts, periods, sources, tile=tile, scenes_used=scenes_used, skipped=skipped)


@dataclass(frozen=True, eq=False)
class _TileSources:
    """What a tile is read from: its scenes (signed), their asset keys by band, the grids the bands
    are read on (the tile's first), odc-stac's lazy loads and the solar day of each time step."""

    settings: SitsSettings
    items: list[pystac.Item]
    keys: dict[str, str]
    fine: Any  # the tile's GeoBox, halo included
    grids: list[_BandGrid]
    loads: dict[_BandGrid, xr.Dataset]
    day_items: dict[dt.date, list[pystac.Item]]
    days: list[dt.date]
    scl_on_fine: tuple[np.ndarray, np.ndarray]  # rows and columns of the SCL pixel nearest each tile pixel
    retry: dict[str, Any]
    read_threads: int


def _tile_sources(items: Sequence[pystac.Item], tile: Tile, settings: SitsSettings) -> _TileSources:
    from cropmap.acquisition.bands import resolve_bands

    bands, scl_band = list(settings.bands), settings.scl_band
    retry = {"retries": settings.read_retries, "backoff_s": settings.read_backoff_s}
    # GDAL retries HTTP 429/5xx itself with exponential backoff; its cache would answer our own
    # retries of such a request with the cached failure
    gdal_options = {"GDAL_HTTP_MAX_RETRY": str(retry["retries"]), "GDAL_HTTP_RETRY_DELAY": str(retry["backoff_s"]),
                    # a COG is one file: do not list its folder (a request per file on remote archives)
                    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
                    # fewer round trips: adjacent tiles in one range, and requests multiplexed on one
                    # HTTP/2 connection where the server speaks it
                    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES", "GDAL_HTTP_MULTIPLEX": "YES",
                    "GDAL_HTTP_VERSION": "2"}
    # signed in memory only: saved items keep unsigned URLs (see cropmap.acquisition.credentials)
    meets = _meets_tile(tile, settings.halo_px)
    items = sign_items([item for item in items if meets(item.bbox)], method=settings.sign)
    if not items:
        raise DataError(f"tile {tile.id}: no scene covers it")
    # the providers' asset keys for the configured bands ("B04" may be "red")
    keys = resolve_bands(items[0], [*bands, scl_band])
    for item in items[1:]:
        if resolve_bands(item, [*bands, scl_band]) != keys:
            raise DataError(f"items {items[0].id} and {item.id} name their bands differently; search one "
                            "collection of one provider per area")
    if settings.cloud_masker == "ukis-csmask":
        check_csmask(bands)
    fine = tile.geobox(settings.halo_px)
    grids = _band_grids(items[0], keys, scl_band, fine)
    day_items: dict[dt.date, list[pystac.Item]] = {}
    for item in items:
        day_items.setdefault(_solar_day(item), []).append(item)
    loads = _lazy_loads(items, keys, grids, scl_band, gdal_options=gdal_options)
    days = [dt.date.fromisoformat(str(np.datetime_as_string(t, unit="D"))) for t in loads[grids[0]].time.values]
    scl_on_fine = nearest_indices(src=next(grid for grid in grids if grid.scl).geobox, dst=fine)
    return _TileSources(settings=settings, items=items, keys=keys, fine=fine, grids=grids, loads=loads,
                        day_items=day_items, days=days, scl_on_fine=scl_on_fine, retry=retry,
                        read_threads=read_threads(items, list(keys.values()), settings.read_threads))


def _composite_all(sources: _TileSources, periods: list[tuple[dt.date, dt.date]], *, tile_id: str):
    """Read the periods' scenes a batch of periods at a time and composite each period: ({grid:
    (periods, bands, y, x) float32 reflectance, NaN where no clear observation}, (periods, y, x)
    clear-observation counts on the tile grid, scenes used, scenes skipped)."""
    composites = {grid: np.full((len(periods), len(grid.bands), *grid.geobox.shape), np.nan, np.float32)
                  for grid in sources.grids}
    counts = np.zeros((len(periods), *sources.fine.shape), np.uint8)
    days = sources.days
    obs_dates = np.array([np.datetime64(day) for day in days])
    selections = [(p, np.flatnonzero((obs_dates >= np.datetime64(start)) & (obs_dates < np.datetime64(stop))))
                  for p, (start, stop) in enumerate(periods)]
    selections = [(p, sel) for p, sel in selections if sel.size]
    scenes_used, skipped = 0, []
    with tqdm(total=len(selections), desc=f"tile {tile_id}", unit="period") as progress:
        for batch in _batches(selections, max_steps=max(1, READ_BATCH_BYTES // _step_bytes(sources.loads))):
            batch_steps = np.concatenate([sel for _, sel in batch])
            arrays, kept, failed = _read_steps(sources.loads, batch_steps, days, sources.day_items, sources.retry,
                                               sources.read_threads)
            skipped += failed
            position = {t: i for i, t in enumerate(kept)}
            for p, sel in batch:
                progress.update()
                steps = [t for t in sel if t in position]
                if not steps:
                    continue
                scenes_used += sum(len(sources.day_items[days[t]]) for t in steps)
                at = [position[t] for t in steps]
                # a period's steps are usually consecutive: a slice is a view, a list a copy
                take = slice(at[0], at[-1] + 1) if at[-1] - at[0] == len(at) - 1 else at
                period = {grid: {name: array[take] for name, array in grid_arrays.items()}
                          for grid, grid_arrays in arrays.items()}
                counts[p] = _composite_period(period, sources, [sources.day_items[days[t]][0] for t in steps],
                                              out={grid: composites[grid][p] for grid in sources.grids})
    return composites, counts, scenes_used, skipped


def _stored_reflectance(composites: dict[_BandGrid, np.ndarray], sources: _TileSources) -> np.ndarray:
    """(periods, bands, y, x) int16 reflectance * `REFLECTANCE_SCALE` on the tile grid, gaps filled
    linearly in time, `REFLECTANCE_FILL` where never observed; frees `composites` grid by grid."""
    bands = list(sources.settings.bands)
    n_periods = next(iter(composites.values())).shape[0]
    ny, nx = sources.fine.shape
    reflectance = np.empty((n_periods, len(bands), ny, nx), np.int16)
    for grid in sources.grids:
        filled = fill_gaps(composites.pop(grid), axis=0)
        if grid.geobox is not sources.fine:
            filled = resample_bilinear(filled, src=grid.geobox, dst=sources.fine)

        def store(rows: slice, filled=filled, grid=grid) -> None:
            block = filled[..., rows, :]
            block *= REFLECTANCE_SCALE  # in place: the cube is the largest array of the job
            np.round(block, out=block)
            np.copyto(block, REFLECTANCE_FILL, where=np.isnan(block))
            for b, band in enumerate(grid.bands):
                reflectance[:, bands.index(band), rows] = block[:, b]

        in_blocks(ny, store)
    return reflectance


def _cube_dataset(reflectance: np.ndarray, counts: np.ndarray, periods: list[tuple[dt.date, dt.date]],
                  sources: _TileSources, *, tile: Tile, scenes_used: int, skipped: list[SkippedScene]) -> xr.Dataset:
    """The CF-1.10 cube: reflectance, clear counts and the never-observed mask, period centres and
    bounds, the tile's CRS and transform, and what was read and skipped."""
    never_observed = counts.sum(axis=0) == 0
    if never_observed.all():
        log.warning("tile %s has no clear observation at all: written as no data and flagged", tile.id)
    centres = [np.datetime64(start + (stop - start) / 2) for start, stop in periods]
    bounds = np.array([[np.datetime64(start), np.datetime64(stop)] for start, stop in periods], dtype="datetime64[ns]")
    fine = sources.fine
    coords = {"time": ("time", np.array(centres, dtype="datetime64[ns]"),
                       {"long_name": "middle of the composite period", "bounds": "time_bnds"}),
              "time_bnds": (("time", "bnds"), bounds), "band": list(sources.settings.bands),
              "y": fine.coords["y"].values, "x": fine.coords["x"].values}
    cube = xr.Dataset(
        {
            # int16 on disk, read by CF software as reflectance (scale_factor) with NaN (_FillValue,
            # set when written); cropmap itself reads the integers (`open_cube`)
            "reflectance": (("time", "band", "y", "x"), reflectance,
                            {"long_name": "surface reflectance, median of the period's clear observations, "
                                          "gaps filled linearly in time",
                             "standard_name": "surface_bidirectional_reflectance", "units": "1",
                             "scale_factor": 1 / REFLECTANCE_SCALE, "add_offset": 0.0}),
            "clear_count": (("time", "y", "x"), counts, {"long_name": "clear observations in the period",
                                                         "units": "1"}),
            "never_observed": (("y", "x"), never_observed.astype(np.uint8),
                               {"long_name": "1 where no clear observation in the season", "units": "1"}),
        },
        coords=coords,
        attrs={"Conventions": "CF-1.10", "title": f"cropmap composites of tile {tile.id}",
               "tile": tile.id, "halo_px": sources.settings.halo_px, "interval_days": sources.settings.interval_days,
               "scenes_found": len(sources.items), "scenes_loaded": scenes_used, "scenes_skipped": len(skipped),
               "skipped_scenes": json.dumps([s.as_dict() for s in skipped]),
               "no_clear_observation": int(never_observed.all())},
    )
    # in place: by default rioxarray deep-copies the cube for each attribute it writes
    return cube.rio.write_crs(tile.crs, inplace=True).rio.write_transform(fine.affine, inplace=True)


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: hashing a GeoBox writes its CRS's WKT
class _BandGrid:
    """A grid that bands are read on: its GeoBox, the reflectance bands on it, and whether SCL is."""

    geobox: Any
    bands: list[str]
    scl: bool


def _band_grids(item: pystac.Item, keys: dict[str, str], scl_band: str, fine) -> list[_BandGrid]:
    """The grids to read bands on, the tile's GeoBox `fine` first.

    Bands (and SCL) stored at twice the tile's pixel size get a grid of that pixel size aligned
    with their own (a 20 m grid snapped to multiples of 20 m) and one pixel wider than the tile, so
    that interpolation at the tile's edge sees the true neighbours; the others are read on the tile
    grid. Without SCL at twice the pixel size, all go on the tile grid."""
    from odc.geo.geobox import GeoBox

    from cropmap.acquisition.bands import native_resolution

    res = abs(fine.resolution.x)
    coarse_res = 2 * res
    coarse = [band for band in keys if abs(native_resolution(item, keys[band], band) - coarse_res) < 1e-6 * res]
    if scl_band not in coarse:
        return [_BandGrid(fine, [band for band in keys if band != scl_band], scl=True)]
    left, bottom, right, top = fine.boundingbox
    coarse_box = GeoBox.from_bbox(
        (np.floor(left / coarse_res - 1) * coarse_res, np.floor(bottom / coarse_res - 1) * coarse_res,
         np.ceil(right / coarse_res + 1) * coarse_res, np.ceil(top / coarse_res + 1) * coarse_res),
        fine.crs, resolution=coarse_res)
    return [_BandGrid(fine, [band for band in keys if band not in coarse], scl=False),
            _BandGrid(coarse_box, [band for band in coarse if band != scl_band], scl=True)]


def _lazy_loads(items: Sequence[pystac.Item], keys: dict[str, str], grids: list[_BandGrid], scl_band: str, *,
                gdal_options: dict[str, str]) -> dict[_BandGrid, xr.Dataset]:
    """One lazy odc-stac load per grid, its variables named by the configured bands; `gdal_options`
    are set around every read."""
    import odc.stac

    from cropmap.acquisition.scenes import CheckedRioDriver, stated_crs_by_href

    driver = CheckedRioDriver(stated_crs_by_href(items, list(keys.values())), gdal_options=gdal_options)
    loads = {}
    for grid in grids:
        grid_bands = grid.bands + ([scl_band] if grid.scl else [])
        data = odc.stac.load(
            items, bands=[keys[band] for band in grid_bands], geobox=grid.geobox, groupby="solar_day",
            resampling={"*": "bilinear", keys[scl_band]: "nearest"}, chunks={"x": 2048, "y": 2048},
            fail_on_error=True, driver=driver,
            # DN 0 is no data in every L2A band and in SCL, whether or not the catalog says so (Planetary
            # Computer items publish no raster:bands): without it, bilinear blends scene edges with 0
            stac_cfg={"*": {"assets": {"*": {"nodata": 0}}}},
        )
        loads[grid] = data.rename({keys[band]: band for band in grid_bands if keys[band] != band})
    return loads


_REMOTE = ("http://", "https://", "s3://", "gs://", "az://", "/vsi")


def read_threads(items: Sequence[pystac.Item], asset_keys: Sequence[str], remote_threads: int) -> int:
    """Reads in flight for a tile: `remote_threads` when any asset is remote (a read mostly waits
    on its round trip), else the job's cores (a local read decodes: more threads than cores only
    compete, 17 % slower with two tile jobs on 2 cores)."""
    from cropmap.conventions import available_cores

    hrefs = (item.assets[key].get_absolute_href() or item.assets[key].href
             for item in items for key in asset_keys if key in item.assets)
    return remote_threads if any(href.startswith(_REMOTE) for href in hrefs) else available_cores()


def _step_bytes(loads: dict[_BandGrid, xr.Dataset]) -> int:
    """Bytes of one time step's pixels, every band on its grid."""
    return sum(int(np.prod(grid.geobox.shape)) * sum(var.dtype.itemsize for var in data.data_vars.values())
               for grid, data in loads.items())


def _batches(selections: list[tuple[int, np.ndarray]], *, max_steps: int) -> list[list[tuple[int, np.ndarray]]]:
    """Consecutive periods grouped so that a group holds at most `max_steps` time steps (or one period)."""
    batches: list[list[tuple[int, np.ndarray]]] = []
    for selection in selections:
        if batches and sum(sel.size for _, sel in batches[-1]) + selection[1].size <= max_steps:
            batches[-1].append(selection)
        else:
            batches.append([selection])
    return batches


def _read_steps(loads: dict[_BandGrid, xr.Dataset], sel: np.ndarray, days: list[dt.date],
                day_items: dict[dt.date, list[pystac.Item]], retry: dict[str, Any], read_threads: int):
    """(the readable time steps of `sel` in memory, {grid: {band: (time, y, x) array}}; their
    indices; the scenes skipped as unreadable).

    All steps are read at once; when that fails, each solar day is read alone (with retries) so
    that only the days that fail are dropped.
    """
    import dask

    def read(steps):
        # reads wait on round trips, not on the CPU: more of them in flight than there are cores
        with dask.config.set(num_workers=read_threads):
            loaded = dask.compute(*[data.isel(time=steps) for data in loads.values()])
        return {grid: {name: data[name].values for name in data.data_vars} for grid, data in zip(loads, loaded)}

    try:
        return with_retries(lambda: read(sel), what=f"period of {days[sel[0]]}", **retry), list(sel), []
    except (OSError, RasterioError, AssetMismatch) as err:
        log.info("reading the period of %s failed (%s); reading its days one by one", days[sel[0]], first_line(err))
    good, failed = [], []
    for t in sel:
        try:
            with_retries(lambda t=t: read([t]), what=f"scenes of {days[t]}", **retry)
            good.append(t)
        except AssetMismatch as err:
            failed += [SkippedScene(item.id, "*", first_line(err)) for item in day_items.get(days[t], [])]
        except (OSError, RasterioError) as err:
            retried = "" if is_missing_file(err) else f" after {retry['retries']} retries"
            reason = f"cannot be read{retried}: {first_line(err)}"
            failed += [SkippedScene(item.id, "*", reason) for item in day_items.get(days[t], [])]
    if not good:
        return None, [], failed
    return read(good), good, failed


def _composite_period(period: dict[_BandGrid, dict[str, np.ndarray]], sources: _TileSources,
                      step_items: list[pystac.Item], *, out: dict[_BandGrid, np.ndarray]) -> np.ndarray:
    """Median composites of one period's loaded time steps (`step_items`: a scene of each) into
    `out` ({grid: (bands, y, x)}), DN scaled to reflectance per scene; returns the clear-observation
    counts on the tile grid."""
    settings, grids, keys, scl_on_fine = sources.settings, sources.grids, sources.keys, sources.scl_on_fine
    scl_band = settings.scl_band
    classes, dilation = settings.masked_scl_classes, settings.cloud_dilation_px
    tile_grid, scl_grid = grids[0], next(grid for grid in grids if grid.scl)
    scl = period[scl_grid][scl_band]
    # DN 0 is no data: an observation counts where every band of its grid has data
    valid = {grid: _has_data(np.minimum.reduce([period[grid][band] for band in grid.bands]))
             for grid in grids if grid.bands}
    masked = scl_masked(scl, classes=classes)
    if settings.cloud_masker == "ukis-csmask":
        masked |= csmask_masked(_reflectance_on(scl_grid, csmask_bands(settings.bands), period, grids, step_items,
                                                keys))
    if scl_grid is tile_grid:
        clear = {tile_grid: ~grown_mask(masked, dilation) & valid[tile_grid]}
    else:
        rows, cols = scl_on_fine
        tile_clear = ~grown_mask(masked[:, rows][:, :, cols], dilation)
        # dilation in coarse pixels, rounded up: at least as wide as on the tile grid
        clear = {tile_grid: tile_clear, scl_grid: ~grown_mask(masked, -(-dilation // 2))}
        if scl_grid.bands:
            clear[scl_grid] &= valid[scl_grid]
            tile_clear &= valid[scl_grid][:, rows][:, :, cols]
        if tile_grid.bands:
            tile_clear &= valid[tile_grid]
    for grid in grids:
        if not grid.bands:
            continue
        band_dn = [period[grid][band] for band in grid.bands]  # (obs, y, x) each
        scaling = [{reflectance_scaling(item, keys[band]) for item in step_items} for band in grid.bands]
        if np.issubdtype(band_dn[0].dtype, np.unsignedinteger) and all(len(pairs) == 1 for pairs in scaling):
            # the usual case: composite the DNs, scale the median
            median = np.empty((len(band_dn), *grid.geobox.shape), np.float32)

            def composite_rows(rows: slice, band_dn=band_dn, grid_clear=clear[grid], median=median) -> None:
                for b, dn in enumerate(band_dn):
                    median[b, rows] = composite_dn(dn[:, None, rows], grid_clear[:, rows])[0]

            in_blocks(grid.geobox.shape[0], composite_rows)  # pixels are independent
            for b, ((scale, offset),) in enumerate(scaling):
                out[grid][b] = median[b] * np.float32(scale) + np.float32(offset)
            continue
        values = np.stack([_reflectance(dn, step_items, keys[band]) for band, dn in zip(grid.bands, band_dn)], axis=1)
        out[grid][...], _ = composite(values, clear[grid])
    return np.minimum(clear[tile_grid].sum(axis=0), 255).astype(np.uint8)


def _reflectance_on(target: _BandGrid, bands: list[str], period: dict[_BandGrid, dict[str, np.ndarray]],
                    grids: list[_BandGrid], step_items: list[pystac.Item], keys: dict[str, str]) -> np.ndarray:
    """(obs, bands, y, x) surface reflectance of the period's observations on grid `target`, NaN
    where no data; bands read on another grid are interpolated bilinearly onto it."""
    out = np.empty((len(step_items), len(bands), *target.geobox.shape), np.float32)
    for b, band in enumerate(bands):
        grid = next(grid for grid in grids if band in grid.bands)
        values = _reflectance(period[grid][band], step_items, keys[band])
        out[:, b] = values if grid is target else resample_bilinear(values, src=grid.geobox, dst=target.geobox)
    return out


def _reflectance(dn: np.ndarray, step_items: list[pystac.Item], asset_key: str) -> np.ndarray:
    """(obs, y, x) float32 surface reflectance of one band's DNs, scaled per scene from its item's
    metadata; NaN where no data."""
    values = np.where(_has_data(dn), dn, np.nan).astype(np.float32)
    for k, item in enumerate(step_items):
        scale, offset = reflectance_scaling(item, asset_key)
        values[k] *= np.float32(scale)
        values[k] += np.float32(offset)
    return values


def _has_data(dn: np.ndarray) -> np.ndarray:
    """DN 0 (and NaN, for assets loaded as float) is no data."""
    return (dn != 0) & ~np.isnan(dn) if np.issubdtype(dn.dtype, np.floating) else dn != 0


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



def tile_cube_step(*, settings: SitsSettings, items_path, tile_id: str, out_path) -> xr.Dataset:
    """The `sits` step: the saved items (`items_path`) that meet tile `tile_id` composited into its
    cube, written to `out_path` (netCDF); returns the cube. Dask's local threads and the row blocks use
    the job's cores (`cropmap.conventions.available_cores`), or `settings.dask_scheduler`'s workers."""
    import dask

    from cropmap.conventions import available_cores
    from cropmap.acquisition.cube import write_cube
    from cropmap.grid import tile_by_id

    tile = tile_by_id(settings.grid, tile_id)
    items = read_items_for_tile(items_path, tile, halo=settings.halo_px)
    with dask_client(settings.dask_scheduler), dask.config.set(num_workers=available_cores()):
        cube = build_tile_cube(items=items, tile=tile, settings=settings)
    write_cube(cube, out_path)
    return cube
