"""The demo areas' three land-cover products (WorldCover-, Esri- and GLAD-like), each on its own
grid, in its own legend and with its own error pattern."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds
from scipy import ndimage

from cropmap.demo.landscape import CROP_CLASSES, Landscape
from cropmap.grid import AreaGrid
from cropmap.io import write_geotiff

__all__ = ["PRODUCT_FILES", "esri_spill", "on_grid", "product_grids", "write_products"]

PRODUCT_MARGIN_M = 200.0  # products reach beyond the area, as real ones do


def on_grid(values: np.ndarray, grid: AreaGrid, transform: Affine, crs: str, shape: tuple[int, int],
            resampling=Resampling.nearest) -> np.ndarray:
    """`values` on the area's grid reprojected onto another grid (0 outside the area)."""
    dst = np.zeros(shape, values.dtype)
    reproject(values, dst, src_transform=grid.transform, src_crs=grid.crs,
              dst_transform=transform, dst_crs=crs, resampling=resampling)
    return dst


def product_grids(grid: AreaGrid) -> dict[str, tuple[Affine, str, tuple[int, int]]]:
    """The three products' own grids (transform, CRS, shape): WorldCover-like at 1/12000 degree in
    EPSG:4326, Esri-like at 10 m UTM shifted by half a pixel, GLAD-like at 30 m UTM."""
    left, bottom, right, top = grid.bounds
    margin = PRODUCT_MARGIN_M
    deg = 1 / 12000
    w, s, e, nth = transform_bounds(grid.crs, "EPSG:4326", left - margin, bottom - margin, right + margin, top + margin)
    w, nth = np.floor(w / deg) * deg, np.ceil(nth / deg) * deg
    grids = {"worldcover": (Affine(deg, 0, w, 0, -deg, nth), "EPSG:4326",
                            (int(np.ceil((nth - s) / deg)), int(np.ceil((e - w) / deg))))}
    shift = grid.resolution / 2
    grids["esri"] = (Affine(grid.resolution, 0, left - margin + shift, 0, -grid.resolution, top + margin - shift), grid.crs,
                     (grid.shape[0] + int(2 * margin / grid.resolution), grid.shape[1] + int(2 * margin / grid.resolution)))
    res = 30.0
    grids["glad"] = (Affine(res, 0, np.floor((left - margin) / res) * res, 0, -res, np.ceil((top + margin) / res) * res),
                     grid.crs, (int((top - bottom + 2 * margin) / res) + 1, int((right - left + 2 * margin) / res) + 1))
    return grids


PRODUCT_FILES = {"worldcover": "worldcover.tif", "esri": "esri_lulc.tif", "glad": "glad_cropland.tif"}


def esri_spill(values: np.ndarray) -> np.ndarray:
    """Esri's crop spills over field margins: non-crop (rangeland, trees) within 3 px of crop
    becomes crop (code 5)."""
    crop = values == 5
    spill = ndimage.binary_dilation(crop, iterations=3) & ~crop & np.isin(values, (11, 2))
    values[spill] = 5
    return values


def write_products(land: Landscape, grid: AreaGrid, out_dir: Path, rng: np.random.Generator, *,
                   errors: str = "random") -> dict[str, Path]:
    """Three land-cover products on three grids, each with its own error pattern. `errors:
    systematic` makes them err as real products do where they err most: WorldCover misses a whole
    crop type (soybean: grassland), Esri calls a third of the grassland crop, GLAD (a year behind) is
    misregistered by 30 m."""
    systematic = errors == "systematic"
    n = len(land.parcel_class)
    is_crop = np.isin(land.parcel_class, CROP_CLASSES)
    is_grass = land.parcel_class == 5
    paths = {}
    grids = product_grids(grid)

    # 1. WorldCover-like, 10 m in EPSG:4326 (1/12000 degree): grassland often called crop,
    #    small fields missed
    transform, crs, shape = grids["worldcover"]
    lc = on_grid(land.landcover, grid, transform, crs, shape)
    pid = on_grid(land.parcel + 1, grid, transform, crs, shape) - 1
    wc_code = np.array([0, 40, 40, 40, 40, 30, 10, 80, 50], np.uint8)
    grass_as_crop = is_grass & (rng.uniform(size=n) < 0.45)
    small = land.parcel_area < np.quantile(land.parcel_area[is_crop], 0.3)
    crop_missed = is_crop & (((small) & (rng.uniform(size=n) < 0.7)) | (rng.uniform(size=n) < 0.06))
    if systematic:  # a whole crop type missed instead of small fields and grassland
        grass_as_crop = is_grass & (rng.uniform(size=n) < 0.05)
        crop_missed = (land.parcel_class == 2) | (is_crop & (rng.uniform(size=n) < 0.03))
    values = wc_code[lc]
    parcel_ok = pid >= 0
    values[parcel_ok & grass_as_crop[np.maximum(pid, 0)] & (lc == 5)] = 40
    values[parcel_ok & crop_missed[np.maximum(pid, 0)] & np.isin(lc, CROP_CLASSES)] = 30
    noise = rng.uniform(size=shape) < 0.02
    values[noise] = rng.choice([10, 30, 40], size=int(noise.sum()))
    values[lc == 0] = 0
    paths["worldcover"] = out_dir / PRODUCT_FILES["worldcover"]
    write_geotiff(paths["worldcover"], values, transform=transform, crs=crs, nodata=0, cog=True)

    # 2. Esri-LULC-like, 10 m UTM on a grid shifted by half a pixel: borders blurred (crop spills
    #    over field margins), some crop fields called rangeland
    transform, crs, shape = grids["esri"]
    lc = on_grid(land.landcover, grid, transform, crs, shape)
    pid = on_grid(land.parcel + 1, grid, transform, crs, shape) - 1
    esri_code = np.array([0, 5, 5, 5, 5, 11, 2, 1, 7], np.uint8)
    crop_as_range = is_crop & (rng.uniform(size=n) < (0.1 if systematic else 0.22))
    grass_as_crop = is_grass & (rng.uniform(size=n) < (0.35 if systematic else 0.2))
    values = esri_code[lc]
    values[(pid >= 0) & crop_as_range[np.maximum(pid, 0)] & np.isin(lc, CROP_CLASSES)] = 11
    values[(pid >= 0) & grass_as_crop[np.maximum(pid, 0)] & (lc == 5)] = 5
    values = esri_spill(values)
    values[lc == 0] = 0
    paths["esri"] = out_dir / PRODUCT_FILES["esri"]
    write_geotiff(paths["esri"], values, transform=transform, crs=grid.crs, nodata=0, cog=True)

    # 3. GLAD-like cropland extent, 30 m UTM, a year behind: fields that changed use since last
    #    year are wrong
    transform, crs, shape = grids["glad"]
    changed = 0.12  # fields whose use changed since last year
    last_year_crop = np.where(is_crop, rng.uniform(size=n) > changed, is_grass & (rng.uniform(size=n) < 0.35))
    crop_map = last_year_crop[land.parcel].astype(np.uint8)
    valid = np.ones_like(crop_map)
    values = on_grid(crop_map, grid, transform, crs, shape, Resampling.mode)
    covered = on_grid(valid, grid, transform, crs, shape, Resampling.nearest)
    values[covered == 0] = 255
    paths["glad"] = out_dir / PRODUCT_FILES["glad"]
    if systematic:  # misregistered: its fields are written 30 m east of where they are
        transform = transform * Affine.translation(1, 0)
    write_geotiff(paths["glad"], values, transform=transform, crs=grid.crs, nodata=255, cog=True)
    return paths
