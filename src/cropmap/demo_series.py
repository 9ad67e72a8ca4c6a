"""Demo areas of real Sentinel-2 series of real, labelled parcels (`demo.series`).

The fields of a synthetic parcel layout (`cropmap.demo.make_landscape`) each take the monthly
L2A series of one real parcel of a WorldCereal extraction (`cropmap.extractions`), drawn from the
crop parcels with probability `demo.crop_share` and from the other parcels otherwise. Every field's
pixels carry that series with a small per-pixel variation (texture, noise); a value missing from
the series is a cloud over that field on that date (flagged in SCL). One scene per month, on its
15th. The truth is the parcel's declared class (cropland = WorldCereal's temporary crops).

The three products err as real ones do, by the real class and together: a parcel of a class that
products confuse with crop (temporary grasses, managed grassland, orchards and vineyards) is called
crop by most products at once with that class's probability, and each product adds errors of its
own, its own grid and its own blur (Esri's crop spills over field margins, GLAD is at 30 m).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np
from rasterio.enums import Resampling
from scipy import ndimage
from tqdm import tqdm

from cropmap.demo import (SPECTRA, Landscape, _new_catalog, archive_edge, esri_spill, make_landscape, on_grid,
                          product_grids, PRODUCT_FILES, save_catalog, write_reference, write_scene)
from cropmap.errors import ConfigError
from cropmap.extractions import CROPLAND_CLASS, MISSING, ExtractionSeries, load_extraction
from cropmap.grid import AreaGrid, tiles_for_area
from cropmap.io import write_geotiff
from cropmap.settings import DemoAreaSettings

log = logging.getLogger(__name__)

__all__ = ["SERIES_CLASSES", "PRODUCT_CONFUSION", "make_series_demo"]

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


def _assign_series(n_parcels: int, series: ExtractionSeries, crop_share: float, rng: np.random.Generator) -> np.ndarray:
    """The sample each parcel takes: a crop sample with probability `crop_share`, else another."""
    observed = (series.reflectance[..., 0] != MISSING).any(axis=1)
    crop_pool = np.flatnonzero(series.is_crop & observed)
    other_pool = np.flatnonzero(~series.is_crop & observed)
    if not crop_pool.size or not other_pool.size:
        raise ConfigError(f"demo.series {series.name}: needs both crop and non-crop samples")
    is_crop = rng.uniform(size=n_parcels) < crop_share
    return np.where(is_crop, rng.choice(crop_pool, n_parcels), rng.choice(other_pool, n_parcels))


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
    sample = _assign_series(len(land.parcel_area), series, demo.crop_share, rng)
    classes = series.landcover[sample]
    codes = np.array([_CODE[c] for c in classes], np.uint8)
    land = Landscape(codes[land.parcel], land.parcel, codes, land.parcel_area, land.params, land.texture)
    write_series_products(land, classes, grid, out_dir / "glc", np.random.default_rng(demo.seed + 1))
    write_reference(land, grid, out_dir / "reference", np.random.default_rng(demo.seed + 2),
                    classes=SERIES_CLASSES, crop_classes=(_CODE[CROPLAND_CLASS],))

    catalog_dir = out_dir / "stac"
    catalog, collection = _new_catalog()
    scene_rng = np.random.default_rng(demo.seed + 3)
    texture = 1 + TEXTURE * ndimage.gaussian_filter(scene_rng.standard_normal(grid.shape).astype(np.float32), 1.0) / 0.28
    beyond_edge = archive_edge(grid.shape, demo.data_coverage)
    cloud = np.asarray(SPECTRA["cloud"], np.float32)
    items = []
    for k, month in enumerate(tqdm(months, desc="series demo scenes", unit="scene")):
        date = series.months[month].replace(day=15)
        values = series.reflectance[sample, month]  # (parcels, bands) DN
        missing = (values == MISSING).any(axis=1)
        parcel_refl = np.where(missing[:, None], cloud, values.astype(np.float32) / 10000)
        refl = np.moveaxis(parcel_refl[land.parcel], -1, 0) * np.where(missing[land.parcel], 1, texture)
        refl += scene_rng.normal(0, NOISE, refl.shape).astype(np.float32)
        scl10 = np.where(missing[land.parcel], 9, 4).astype(np.uint8)  # a missing value: cloud over the field
        items.append(write_scene(catalog_dir, k=k, date=date, refl=refl.astype(np.float32), scl10=scl10, grid=grid,
                                 no_data=beyond_edge, cover=float(missing[land.parcel].mean())))
    return save_catalog(catalog, collection, items, catalog_dir)
