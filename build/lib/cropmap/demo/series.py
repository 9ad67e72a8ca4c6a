"""Demo areas of real Sentinel-2 series of real, labelled parcels (`demo.series`).

The fields of a synthetic parcel layout (`cropmap.demo.make_landscape`) each take the monthly
L2A series of one real parcel of a WorldCereal extraction (`cropmap.demo.extractions`), drawn from the
crop parcels with probability `demo.crop_share` and from the other parcels otherwise. An extraction
holds fewer parcels than an area has fields, so a source parcel serves several fields; with
`demo.series_copies: varied` (the default) no two fields carry the same series: each field's is its
source's changed as neighbouring fields of one crop differ (`vary_series`: a phenology shift of up
to `SHIFT_DAYS`, a gain of a few per cent per band, and clouds of its own), and the sources are
reused as evenly as the pool allows. `verbatim` copies the series as they are, drawn with
replacement (the earlier areas: a classifier that memorises a series finds its label on a copy).
Every field's pixels carry its series with a small per-pixel variation (texture, noise); a value
missing from the series is a cloud over that field on that date (flagged in SCL). One scene per
month, on its 15th. The truth is the parcel's declared class (cropland = WorldCereal's temporary
crops). `series_sources.json` says how many source series each class has and how often each is used.

The three products err as real ones do, by the real class and together: a parcel of a class that
products confuse with crop (temporary grasses, managed grassland, orchards and vineyards) is called
crop by most products at once with that class's probability, and each product adds errors of its
own, its own grid and its own blur (Esri's crop spills over field margins, GLAD is at 30 m).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import numpy as np
from rasterio.enums import Resampling
from scipy import ndimage
from tqdm import tqdm

from cropmap.demo.catalog import new_catalog, save_catalog, write_scene
from cropmap.demo.landscape import (SPECTRA, Landscape, add_cloud_bank, archive_edge, cloud_bank_dates, cloud_bank_mask,
                                    make_landscape, write_reference)
from cropmap.demo.products import PRODUCT_FILES, esri_spill, on_grid, product_grids
from cropmap.errors import ConfigError
from cropmap.demo.extractions import CROPLAND_CLASS, MISSING, ExtractionSeries, load_extraction
from cropmap.grid import AreaGrid, tiles_for_area
from cropmap.io import atomic_path, write_geotiff
from cropmap.settings import DemoAreaSettings

log = logging.getLogger(__name__)

__all__ = ["SERIES_CLASSES", "PRODUCT_CONFUSION", "make_series_demo", "vary_series"]

# land-cover codes of the truth raster, by WorldCereal LANDCOVER10 class
SERIES_CLASSES = {1: "temporary_crops", 2: "temporary_grasses", 3: "grasslands", 4: "permanent_crops", 5: "trees",
                  6: "shrubland", 7: "bare_sparsely_vegetated", 8: "built_up", 9: "water", 10: "wetlands"}
_CODE = {name: code for code, name in SERIES_CLASSES.items()}
# probability that the products together take a parcel of the class for crop (for cropland: miss
# it), as global products do: leys, managed grassland, orchards and vineyards look like crops
PRODUCT_CONFUSION = {"temporary_crops": 0.08, "temporary_grasses": 0.30, "grasslands": 0.12,
                     "permanent_crops": 0.18, "shrubland": 0.10, "trees": 0.06, "wetlands": 0.05,
                     "bare_sparsely_vegetated": 0.05, "built_up": 0.02, "water": 0.0}
SHARED_ERROR_FOLLOWED = 0.7  # share of the products that follow a shared confusion
OWN_ERROR = {"worldcover": 0.05, "esri": 0.07, "glad": 0.09}  # each product's independent errors per parcel
# each product's non-crop code by class (its own legend)
_WORLDCOVER_CODE = {"trees": 10, "shrubland": 20, "grasslands": 30, "temporary_grasses": 30, "permanent_crops": 30,
                    "built_up": 50, "bare_sparsely_vegetated": 60, "water": 80, "wetlands": 90}
_ESRI_CODE = {"trees": 2, "shrubland": 11, "grasslands": 11, "temporary_grasses": 11, "permanent_crops": 11,
              "built_up": 7, "bare_sparsely_vegetated": 8, "water": 1, "wetlands": 4}
TEXTURE = 0.02  # relative per-pixel variation of a field's reflectance
NOISE = 0.003  # reflectance noise per pixel and date
# how a field's series differs from its source parcel's (`series_copies: varied`): neighbouring
# fields of one crop are sown up to about two weeks apart and differ by a few per cent in brightness
SHIFT_DAYS = 14.0  # phenology shift, uniform in [-SHIFT_DAYS, SHIFT_DAYS]
GAIN_SD = 0.03  # per-band multiplicative gain, 1 + N(0, GAIN_SD)
DAYS_PER_MONTH = 365.25 / 12


def _assign_series(n_parcels: int, series: ExtractionSeries, crop_share: float, rng: np.random.Generator, *,
                   even: bool) -> np.ndarray:
    """The sample each parcel takes: a crop sample with probability `crop_share`, else another.
    `even`: each pool's samples serve as evenly many parcels as its size allows (a shuffled pool
    repeated), instead of independent draws with replacement."""
    observed = (series.reflectance[..., 0] != MISSING).any(axis=1)
    crop_pool = np.flatnonzero(series.is_crop & observed)
    other_pool = np.flatnonzero(~series.is_crop & observed)
    if not crop_pool.size or not other_pool.size:
        raise ConfigError(f"demo.series {series.name}: needs both crop and non-crop samples")
    is_crop = rng.uniform(size=n_parcels) < crop_share
    if not even:
        return np.where(is_crop, rng.choice(crop_pool, n_parcels), rng.choice(other_pool, n_parcels))
    sample = np.empty(n_parcels, np.int64)
    for pool, sel in ((crop_pool, is_crop), (other_pool, ~is_crop)):
        sample[sel] = rng.permutation(np.resize(rng.permutation(pool), int(sel.sum())))
    return sample


def _filled(values: np.ndarray) -> np.ndarray:
    """(n, T, C) series with NaN gaps filled linearly along T (ends: the nearest value); every series
    must hold at least one value."""
    t = np.arange(values.shape[1], dtype=np.float64)
    out = values.copy()
    for i, c in zip(*np.nonzero(np.isnan(values).any(axis=1))):
        ok = ~np.isnan(values[i, :, c])
        out[i, :, c] = np.interp(t, t[ok], values[i, ok, c])
    return out


def vary_series(values: np.ndarray, clouds: np.ndarray, rng: np.random.Generator, *,
                days_per_step: float = DAYS_PER_MONTH) -> np.ndarray:
    """(n, T, C) float32 reflectance of `n` fields from their source parcels' series `values` (n, T, C),
    NaN where not observed, dates `days_per_step` apart: each field's series is its source's with
    gaps filled, shifted in time by a phenology shift uniform in +-`SHIFT_DAYS` (linear between
    dates, the first and last values held beyond the ends), scaled by a gain 1 + N(0, `GAIN_SD`) per
    band, then NaN where `clouds` (n, T) says the field is under cloud: its own clouds, not its source's."""
    n, steps, _ = values.shape
    filled = _filled(values.astype(np.float64))
    shift = rng.uniform(-SHIFT_DAYS, SHIFT_DAYS, n) / days_per_step  # in dates
    t = np.arange(steps, dtype=np.float64)
    source_t = np.clip(t[None, :] - shift[:, None], 0, steps - 1)  # (n, T): a field sown later reads earlier
    low = np.minimum(np.floor(source_t).astype(int), steps - 2) if steps > 1 else np.zeros_like(source_t, int)
    frac = (source_t - low)[..., None]
    rows = np.arange(n)[:, None]
    shifted = filled[rows, low] * (1 - frac) + filled[rows, np.minimum(low + 1, steps - 1)] * frac
    gain = 1 + rng.normal(0, GAIN_SD, (n, 1, values.shape[2]))
    out = (shifted * gain).astype(np.float32)
    out[clouds] = np.nan
    return out


def _parcel_series(series: ExtractionSeries, sample: np.ndarray, months: list[int], copies: str,
                   rng: np.random.Generator) -> np.ndarray:
    """(parcels, months, bands) float32 reflectance of each parcel's field, NaN where a cloud hides it."""
    values = series.reflectance[sample][:, months]
    refl = np.where(values == MISSING, np.nan, values.astype(np.float32) / 10000)
    if copies == "verbatim":
        return refl
    # each field's own clouds: the cloud pattern of another parcel of the extraction, so that clouds
    # keep the season's real frequency but no longer mark the fields that share a source
    cloudy = (series.reflectance[:, months, 0] == MISSING)
    clouds = cloudy[rng.integers(0, len(cloudy), len(sample))]
    return vary_series(refl, clouds, rng)


def series_sources(series: ExtractionSeries, sample: np.ndarray, copies: str) -> dict:
    """How many source series each class has and how often each is used, for `series_sources.json`."""
    observed = (series.reflectance[..., 0] != MISSING).any(axis=1)
    out = {"copies": copies, "classes": {}}
    for name in sorted(set(series.landcover[sample].tolist())):
        used = sample[series.landcover[sample] == name]
        _, reuse = np.unique(used, return_counts=True)
        out["classes"][name] = {"fields": int(used.size), "sources_available": int(np.sum(observed & (series.landcover == name))),
                                "sources_used": int(reuse.size), "fields_per_source_mean": round(float(reuse.mean()), 2),
                                "fields_per_source_max": int(reuse.max())}
    return out


def _product_calls(classes: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """(n_parcels,) bool crop call of each product from each parcel's LANDCOVER10 class."""
    is_crop = classes == CROPLAND_CLASS
    confusion = np.array([PRODUCT_CONFUSION.get(c, 0.05) for c in classes])
    shared = rng.uniform(size=classes.size) < confusion
    calls = {}
    for name, own in OWN_ERROR.items():
        wrong = (shared & (rng.uniform(size=classes.size) < SHARED_ERROR_FOLLOWED)) | (rng.uniform(size=classes.size) < own)
        calls[name] = is_crop ^ wrong
    return calls


def write_series_products(land: Landscape, classes: np.ndarray, grid: AreaGrid, out_dir: Path,
                          rng: np.random.Generator) -> dict[str, Path]:
    """The three products of a series demo area, each in its own legend and on its own grid."""
    calls = _product_calls(classes, rng)
    grids = product_grids(grid)
    paths = {name: out_dir / PRODUCT_FILES[name] for name in grids}
    for name, legend, crop_code in (("worldcover", _WORLDCOVER_CODE, 40), ("esri", _ESRI_CODE, 5)):
        transform, crs, shape = grids[name]
        pid = on_grid(land.parcel + 1, grid, transform, crs, shape) - 1
        other = np.array([legend.get(c, legend["grasslands"]) for c in classes], np.uint8)
        code = np.where(calls[name], crop_code, other).astype(np.uint8)
        values = np.where(pid >= 0, code[np.maximum(pid, 0)], 0).astype(np.uint8)
        if name == "esri":
            values = esri_spill(values)
        write_geotiff(paths[name], values, transform=transform, crs=crs, nodata=0, cog=True)
    transform, crs, shape = grids["glad"]
    values = on_grid(calls["glad"][land.parcel].astype(np.uint8), grid, transform, crs, shape, Resampling.mode)
    covered = on_grid(np.ones(grid.shape, np.uint8), grid, transform, crs, shape)
    values[covered == 0] = 255
    write_geotiff(paths["glad"], values, transform=transform, crs=crs, nodata=255, cog=True)
    return paths


def make_series_demo(*, settings: DemoAreaSettings, out_dir: str | Path) -> Path:
    """Write a demo area whose fields carry real parcels' series; return its STAC catalog's path."""
    out_dir = Path(out_dir)
    demo = settings.demo
    series = load_extraction(demo.series)
    start, end = dt.date.fromisoformat(settings.season.start), dt.date.fromisoformat(settings.season.end)
    months = series.months_in(start, end)
    if not months:
        raise ConfigError(f"demo.series {demo.series}: no month of the extraction ({series.months[0]}.."
                          f"{series.months[-1]}) in the season {start}..{end}")
    grid = AreaGrid(tuple(tiles_for_area(settings.grid)))
    rng = np.random.default_rng(demo.seed)
    log.info("series demo %s: %d tiles, %s px, CRS %s, seed %d, %d months", demo.series, len(grid.tiles), grid.shape,
             grid.crs, demo.seed, len(months))
    land = make_landscape(grid.shape, rng)
    copies = demo.series_copies
    sample = _assign_series(len(land.parcel_area), series, demo.crop_share, rng, even=copies == "varied")
    parcel_series = _parcel_series(series, sample, months, copies, np.random.default_rng(demo.seed + 4))
    sources = series_sources(series, sample, copies)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "series_sources.json") as tmp:
        tmp.write_text(json.dumps(sources, indent=1))
    for name, row in sources["classes"].items():
        log.info("%s: %d fields from %d of %d source series (up to %d fields each; copies: %s)", name, row["fields"],
                 row["sources_used"], row["sources_available"], row["fields_per_source_max"], copies)
    classes = series.landcover[sample]
    codes = np.array([_CODE[c] for c in classes], np.uint8)
    land = Landscape(codes[land.parcel], land.parcel, codes, land.parcel_area, land.params, land.texture)
    write_series_products(land, classes, grid, out_dir / "glc", np.random.default_rng(demo.seed + 1))
    write_reference(land, grid, out_dir / "reference", np.random.default_rng(demo.seed + 2),
                    classes=SERIES_CLASSES, crop_classes=(_CODE[CROPLAND_CLASS],))

    catalog_dir = out_dir / "stac"
    catalog, collection = new_catalog()
    scene_rng = np.random.default_rng(demo.seed + 3)
    texture = 1 + TEXTURE * ndimage.gaussian_filter(scene_rng.standard_normal(grid.shape).astype(np.float32), 1.0) / 0.28
    beyond_edge = archive_edge(grid.shape, demo.data_coverage)
    cloud = np.asarray(SPECTRA["cloud"], np.float32)
    bank, bank_on = cloud_bank_mask(grid), cloud_bank_dates(len(months), demo.cloud_bank, np.random.default_rng(demo.seed + 5))
    items = []
    for k, month in enumerate(tqdm(months, desc="series demo scenes", unit="scene")):
        date = series.months[month].replace(day=15)
        values = parcel_series[:, k]  # (parcels, bands) reflectance
        missing = np.isnan(values).any(axis=1)
        parcel_refl = np.where(missing[:, None], cloud, values)
        refl = np.moveaxis(parcel_refl[land.parcel], -1, 0) * np.where(missing[land.parcel], 1, texture)
        refl += scene_rng.normal(0, NOISE, refl.shape).astype(np.float32)
        scl10 = np.where(missing[land.parcel], 9, 4).astype(np.uint8)  # a missing value: cloud over the field
        if bank_on[k]:
            add_cloud_bank(refl, scl10, bank)
        items.append(write_scene(catalog_dir, k=k, date=date, refl=refl.astype(np.float32), scl10=scl10, grid=grid,
                                 no_data=beyond_edge, cover=float((scl10 == 9).mean())))
    return save_catalog(catalog, collection, items, catalog_dir)
