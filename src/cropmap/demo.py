"""The embedded demo study area: a synthetic landscape served as a local static STAC catalog.

Everything is drawn deterministically from one seed, on the tiles of the area's grid:
- field parcels of varied size and irregular shape, with crop types of different calendars
  (maize, soybean, winter wheat, wheat followed by soybean), grassland (mown, the hard confusion
  with crops), forest, water and built-up land;
- Sentinel-2 L2A-like scenes every `revisit_days`: 10 bands (20 m bands at 20 m) and SCL as COGs
  with the DN conventions of the public catalogs (uint16, nodata 0, reflectance = DN * 1e-4 - 0.1
  since processing baseline 04.00), moving clouds with soft edges, shadows and cirrus flagged in
  SCL with some misses, a few mostly cloudy scenes and a partial swath on one orbit;
- three global land-cover products, each on its own grid and with its own error pattern;
- the reference: the true cropland raster and a stratified random sample of points.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pystac
from affine import Affine
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds
from scipy import ndimage
from scipy.spatial import cKDTree
from shapely.geometry import box, mapping
from tqdm import tqdm

from cropmap.conventions import NODATA
from cropmap.grid import AreaGrid, reproject_geometry, tiles_for_area
from cropmap.io import atomic_path, write_geotiff
from cropmap.settings import DemoAreaSettings, SeasonSettings

log = logging.getLogger(__name__)

__all__ = ["make_demo", "LANDCOVER_CLASSES", "demo_area_config", "write_demo_area_config"]

# true land-cover classes of the demo landscape
LANDCOVER_CLASSES = {1: "maize", 2: "soybean", 3: "winter wheat", 4: "wheat then soybean",
                     5: "grassland", 6: "forest", 7: "water", 8: "built-up"}
CROP_CLASSES = (1, 2, 3, 4)

BANDS_10M = ("B02", "B03", "B04", "B08")
BAND_INFO = {  # name: (common name, centre wavelength in micrometres, resolution in m)
    "B02": ("blue", 0.49, 10), "B03": ("green", 0.56, 10), "B04": ("red", 0.665, 10),
    "B05": ("rededge", 0.704, 20), "B06": ("rededge", 0.74, 20), "B07": ("rededge", 0.783, 20),
    "B08": ("nir", 0.842, 10), "B8A": ("nir08", 0.865, 20), "B11": ("swir16", 1.61, 20),
    "B12": ("swir22", 2.19, 20),
}
BAND_ORDER = tuple(BAND_INFO)
# surface reflectance spectra in BAND_ORDER
SPECTRA = {
    "vegetation": [0.03, 0.06, 0.03, 0.10, 0.30, 0.38, 0.42, 0.44, 0.20, 0.09],
    "forest": [0.02, 0.04, 0.02, 0.07, 0.22, 0.29, 0.33, 0.34, 0.15, 0.06],
    "soil": [0.08, 0.11, 0.14, 0.17, 0.20, 0.22, 0.24, 0.25, 0.32, 0.27],
    "dry_grass": [0.06, 0.09, 0.11, 0.15, 0.20, 0.23, 0.26, 0.27, 0.33, 0.24],
    "litter": [0.04, 0.06, 0.07, 0.09, 0.12, 0.14, 0.16, 0.17, 0.20, 0.14],
    "water": [0.05, 0.05, 0.03, 0.02, 0.015, 0.012, 0.01, 0.01, 0.005, 0.003],
    "urban": [0.12, 0.13, 0.14, 0.16, 0.18, 0.19, 0.20, 0.21, 0.25, 0.22],
    "cloud": [0.55, 0.55, 0.56, 0.56, 0.57, 0.57, 0.58, 0.58, 0.45, 0.35],
}
DN_OFFSET = 1000  # processing baseline >= 04.00
DN_SCALE = 10000


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class Landscape:
    landcover: np.ndarray  # (H, W) uint8 classes of LANDCOVER_CLASSES
    parcel: np.ndarray  # (H, W) int32 parcel id
    parcel_class: np.ndarray  # (n_parcels,) uint8 class of each parcel's fields
    parcel_area: np.ndarray  # (n_parcels,) pixels
    params: dict[str, np.ndarray]  # per-parcel phenology parameters
    texture: np.ndarray  # (H, W) float32 brightness factor


def make_landscape(shape: tuple[int, int], rng: np.random.Generator, *, crop_share: float = 0.62) -> Landscape:
    h, w = shape
    # parcels: Voronoi cells of seeds whose density varies over the area, with warped borders
    density = ndimage.gaussian_filter(rng.standard_normal((h // 16 + 1, w // 16 + 1)), 4)
    density = np.kron((density - density.min()) / (np.ptp(density) + 1e-9), np.ones((16, 16)))[:h, :w]
    n_candidates = int(h * w / 500)
    cand = rng.uniform([0, 0], [h, w], size=(n_candidates, 2))
    keep = rng.uniform(size=n_candidates) < 0.15 + 0.85 * density[cand[:, 0].astype(int), cand[:, 1].astype(int)] ** 2
    seeds = cand[keep]
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    warp = [ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), 12) * 60 for _ in range(2)]
    _, parcel = cKDTree(seeds).query(np.stack([(rows + warp[0]).ravel(), (cols + warp[1]).ravel()], 1))
    parcel = parcel.reshape(h, w).astype(np.int32)
    n = len(seeds)
    area = np.bincount(parcel.ravel(), minlength=n)

    # parcel classes: crops and grassland; forest, water and built-up come from large-scale zones
    crop_types = rng.choice([1, 2, 3, 4], size=n, p=[0.3, 0.3, 0.25, 0.15])
    parcel_class = np.where(rng.uniform(size=n) < crop_share, crop_types, 5).astype(np.uint8)
    landcover = parcel_class[parcel]
    zones = ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), 40)
    forest = zones > np.quantile(zones, 0.85)
    lake = ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), 30)
    water = lake > np.quantile(lake, 0.96)
    cy, cx = rng.uniform(0.2, 0.8, 2) * (h, w)
    town = ((rows - cy) ** 2 + (cols - cx) ** 2) < (0.07 * min(h, w)) ** 2 * (1 + 0.5 * warp[0] / 60)
    # whole parcels go to the zone class when most of them lies in it (fields are not split)
    for mask, cls in ((forest, 6), (town, 8), (water, 7)):
        share = np.bincount(parcel.ravel(), weights=mask.ravel(), minlength=n) / np.maximum(area, 1)
        parcel_class[share > 0.5] = cls
        landcover = parcel_class[parcel]
        landcover[mask] = cls

    params = {
        "shift": rng.normal(0, 7, n),  # days: sowing varies between farms
        "fmax": rng.uniform(0.75, 0.95, n),
        "mow1": rng.uniform(150, 190, n),
        "mow2": rng.uniform(200, 240, n),
        "brightness": rng.uniform(0.9, 1.1, n),
    }
    texture = (1 + 0.04 * ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), 1.5) * 3).astype(np.float32)
    return Landscape(landcover.astype(np.uint8), parcel, parcel_class, area, params, texture)


def vegetation_fraction(cls: int, doy: float, p: dict[str, np.ndarray]) -> np.ndarray:
    """Green vegetation cover (0..1) of every parcel of class `cls` on day of year `doy`."""
    t = doy - p["shift"]
    fmax = p["fmax"]
    if cls == 1:  # maize: sown in May, peak in July, harvested in September
        return 0.05 + fmax * (_sigmoid((t - 160) / 8) - _sigmoid((t - 255) / 7))
    if cls == 2:  # soybean: later and shorter
        return 0.05 + 0.9 * fmax * (_sigmoid((t - 175) / 7) - _sigmoid((t - 268) / 6))
    if cls in (3, 4):  # winter wheat: green at the start of the season, harvested early July
        wheat = 0.25 + (fmax - 0.25) * _sigmoid((t - 100) / 8) - fmax * _sigmoid((t - 180) / 5)
        wheat = np.clip(wheat, 0.05, 1)
        if doy > 304:  # sown in October: green again before winter (seasons across New Year)
            wheat = wheat + 0.3 * fmax * _sigmoid((t - 320) / 8)
        if cls == 3:
            return wheat
        return wheat + 0.8 * fmax * (_sigmoid((t - 205) / 6) - _sigmoid((t - 285) / 6))
    if cls == 5:  # grassland: green all season, mown once or twice
        base = 0.35 + 0.3 * _sigmoid((doy - 105) / 10) - 0.12 * _sigmoid((doy - 230) / 15)
        for mow in (p["mow1"], p["mow2"]):
            since = doy - mow
            base = base * np.where(since > 0, 1 - 0.45 * np.exp(-np.maximum(since, 0) / 18), 1)
        return base
    if cls == 6:  # deciduous forest
        return 0.45 + 0.45 * (_sigmoid((doy - 120) / 6) - _sigmoid((doy - 290) / 8)) + 0 * t
    if cls == 7:
        return 0 * t
    return 0.08 + 0 * t


BACKGROUND = {1: "soil", 2: "soil", 3: "soil", 4: "soil", 5: "dry_grass", 6: "litter", 7: "water", 8: "urban"}


def surface_reflectance(land: Landscape, doy: float) -> np.ndarray:
    """(bands, H, W) float32 surface reflectance of the landscape on day `doy`."""
    veg_frac = np.zeros(len(land.parcel_class), np.float32)
    for cls in range(1, 9):
        sel = land.parcel_class == cls
        if sel.any():
            sub = {k: v[sel] for k, v in land.params.items()}
            veg_frac[sel] = np.clip(vegetation_fraction(cls, doy, sub), 0, 1)
    f = veg_frac[land.parcel]
    # pixels whose zone class differs from their parcel's class (zone edges) follow the zone
    for cls in (6, 7, 8):
        off = (land.landcover == cls) & (land.parcel_class[land.parcel] != cls)
        if off.any():
            f[off] = float(np.clip(vegetation_fraction(cls, doy, {"shift": np.zeros(1), "fmax": np.ones(1)})[0], 0, 1))
    refl = np.empty((len(BAND_ORDER), *land.parcel.shape), np.float32)
    bright = land.params["brightness"][land.parcel].astype(np.float32) * land.texture
    for b in range(len(BAND_ORDER)):
        bg_map = np.zeros(land.parcel.shape, np.float32)
        for cls, name in BACKGROUND.items():
            bg_map[land.landcover == cls] = SPECTRA[name][b]
        veg = np.where(land.landcover == 6, SPECTRA["forest"][b], SPECTRA["vegetation"][b])
        refl[b] = (f * veg + (1 - f) * bg_map) * bright
    return refl


def _smooth_field(rng, shape, sigma):
    h, w = shape
    small = ndimage.gaussian_filter(rng.standard_normal((h // 4 + 2, w // 4 + 2)), sigma / 4)
    field = ndimage.zoom(small, 4, order=1)[:h, :w]
    return (field - field.mean()) / (field.std() + 1e-9)


def atmosphere(refl: np.ndarray, rng: np.random.Generator, cover: float) -> tuple[np.ndarray, np.ndarray]:
    """Add clouds, shadows and cirrus; return top-of-canopy reflectance and 10 m SCL."""
    _, h, w = refl.shape
    scl = np.full((h, w), 5, np.uint8)
    ndvi = (refl[6] - refl[2]) / (refl[6] + refl[2] + 1e-6)
    scl[ndvi > 0.35] = 4
    scl[(refl[6] < 0.05) & (ndvi < 0)] = 6
    out = refl.copy()
    cloud_alpha = np.zeros((h, w), np.float32)
    if cover > 0:
        field = _smooth_field(rng, (h, w), rng.uniform(15, 40))
        thr = np.quantile(field, 1 - cover)
        cloud_alpha = np.clip((field - thr) / 0.6, 0, 1).astype(np.float32)
        dy, dx = rng.integers(10, 30, 2) * rng.choice([-1, 1], 2)
        shadow = np.roll(cloud_alpha, (dy, dx), axis=(0, 1)) > 0.3
        shadow &= cloud_alpha < 0.1
        out[:, shadow] *= 0.4
        scl[shadow & (rng.uniform(size=(h, w)) < 0.85)] = 3  # some shadow is missed, as in real SCL
        spectrum = np.asarray(SPECTRA["cloud"], np.float32)[:, None, None]
        out = (1 - cloud_alpha) * out + cloud_alpha * spectrum
        # thin cloud edges (alpha < 0.2) go unflagged, as real SCL misses them
        scl[cloud_alpha > 0.2] = 8
        scl[cloud_alpha > 0.7] = 9
    if rng.uniform() < 0.25:
        cirrus = np.clip(_smooth_field(rng, (h, w), 60) - 0.5, 0, 1) * 0.12
        out = out + cirrus[None] * 0.5
        scl[(cirrus > 0.03) & (cloud_alpha <= 0.2)] = 10
    return out, scl


def _to_dn(refl: np.ndarray) -> np.ndarray:
    return np.clip(np.round(refl * DN_SCALE) + DN_OFFSET, 1, 65535).astype(np.uint16)


def _down2(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[-2:]
    return a.reshape(*a.shape[:-2], h // 2, 2, w // 2, 2).mean(axis=(-3, -1))


def _scene_dates(season: SeasonSettings, revisit_days: int) -> list[dt.date]:
    start, end = dt.date.fromisoformat(season.start), dt.date.fromisoformat(season.end)
    return [start + dt.timedelta(days=d) for d in range(1, (end - start).days + 1, revisit_days)]


def _item(item_id: str, date: dt.date, grid: AreaGrid, epsg: int, valid_bounds, cover: float, platform: str) -> pystac.Item:
    geom = reproject_geometry(box(*valid_bounds).segmentize(500), grid.crs, "EPSG:4326")
    when = dt.datetime(date.year, date.month, date.day, 17, 21, 34, tzinfo=dt.timezone.utc)
    item = pystac.Item(
        id=item_id, geometry=mapping(geom), bbox=list(geom.bounds), datetime=when,
        properties={
            "platform": platform, "constellation": "sentinel-2", "instruments": ["msi"],
            "eo:cloud_cover": round(100 * cover, 2), "proj:epsg": epsg,
            "s2:processing_baseline": "05.09", "s2:mgrs_tile": "14SPJ", "processing:level": "L2A",
        },
        stac_extensions=[
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
    )
    return item


def _add_band_asset(item: pystac.Item, name: str, href: str, shape, transform: Affine) -> None:
    extra: dict[str, Any] = {"proj:shape": list(shape), "proj:transform": list(transform)[:6]}
    if name == "SCL":
        extra["raster:bands"] = [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 20}]
        title = "Scene classification map (SCL)"
    else:
        common, wl, res = BAND_INFO[name]
        extra["eo:bands"] = [{"name": name, "common_name": common, "center_wavelength": wl}]
        extra["raster:bands"] = [{"nodata": 0, "data_type": "uint16", "spatial_resolution": res,
                                  "scale": 1 / DN_SCALE, "offset": -DN_OFFSET / DN_SCALE}]
        title = f"{name} ({common}) - {res}m"
    item.add_asset(name, pystac.Asset(href=href, media_type=pystac.MediaType.COG, roles=["data"],
                                      title=title, extra_fields=extra))


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


def write_reference(land: Landscape, grid: AreaGrid, out_dir: Path, rng: np.random.Generator,
                    points_per_class: int = 150, *, classes: dict[int, str] = LANDCOVER_CLASSES,
                    crop_classes: tuple[int, ...] = CROP_CLASSES) -> None:
    """The true cropland raster, the land-cover raster (`classes`) and a sample of points stratified
    by the true class."""
    truth = np.isin(land.landcover, crop_classes).astype(np.uint8)
    write_geotiff(out_dir / "cropland_truth.tif", truth, transform=grid.transform, crs=grid.crs, nodata=NODATA, cog=True)
    write_geotiff(out_dir / "landcover_truth.tif", land.landcover, transform=grid.transform, crs=grid.crs,
                  nodata=0, cog=True, tags={f"class_{k}": v for k, v in classes.items()})
    to_lonlat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    rows = []
    for cls in (1, 0):  # stratified by the true class
        idx = np.flatnonzero(truth.ravel() == cls)
        pick = rng.choice(idx, size=min(points_per_class, idx.size), replace=False)
        r, c = np.unravel_index(pick, truth.shape)
        x, y = grid.transform * (c + 0.5, r + 0.5)
        lon, lat = to_lonlat.transform(x, y)
        rows += [(cls, *vals) for vals in zip(x, y, lon, lat, land.landcover[r, c])]
    with atomic_path(out_dir / "points.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "x", "y", "lon", "lat", "crop", "landcover"])
        for i, (cls, x, y, lon, lat, lc) in enumerate(rows):
            writer.writerow([i, f"{x:.1f}", f"{y:.1f}", f"{lon:.6f}", f"{lat:.6f}", cls, classes[int(lc)]])


def _new_catalog() -> tuple[pystac.Catalog, pystac.Collection]:
    catalog = pystac.Catalog(id="cropmap-demo", description="Synthetic Sentinel-2 L2A scenes of the cropmap demo area")
    collection = pystac.Collection(
        id="sentinel-2-l2a", description="Sentinel-2 L2A-like synthetic scenes",
        extent=pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]), pystac.TemporalExtent([[None, None]])),
        license="CC-BY-4.0",
    )
    catalog.add_child(collection)
    return catalog, collection


def save_catalog(catalog: pystac.Catalog, collection: pystac.Collection, items: list[pystac.Item], catalog_dir: Path) -> Path:
    """Add the scenes' items and write the catalog; catalog.json is written last, so a complete
    catalog.json means a complete demo."""
    collection.add_items(items)
    collection.update_extent_from_items()
    catalog.normalize_hrefs(str(catalog_dir))
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return catalog_dir / "catalog.json"


def write_scene(catalog_dir: Path, *, k: int, date: dt.date, refl: np.ndarray, scl10: np.ndarray, grid: AreaGrid,
                no_data: np.ndarray, valid_cols: int = 0, cover: float) -> pystac.Item:
    """Write one scene's 10 band COGs (20 m bands at 20 m) and SCL from its (bands, H, W) 10 m
    top-of-canopy reflectance and 10 m SCL; `no_data` (H, W) and the first `valid_cols` columns
    get DN 0 (outside the swath or the archive)."""
    epsg = int(grid.crs.split(":")[1])
    platform = "sentinel-2a" if k % 2 == 0 else "sentinel-2b"
    item_id = f"S2{'A' if k % 2 == 0 else 'B'}_14SPJ_{date:%Y%m%d}_0_L2A"
    left, bottom, right, top = grid.bounds
    item = _item(item_id, date, grid, epsg, (left + valid_cols * grid.resolution, bottom, right, top), cover, platform)
    scene_dir = catalog_dir / "sentinel-2-l2a" / item_id
    t20 = grid.transform * Affine.scale(2)
    for b, name in enumerate(BAND_ORDER):
        if name not in BANDS_10M:
            dn = _to_dn(_down2(refl[b]))
            dn[:, : valid_cols // 2] = 0
            dn[no_data[::2, ::2]] = 0
            transform = t20
        else:
            dn = _to_dn(refl[b])
            dn[:, :valid_cols] = 0
            dn[no_data] = 0
            transform = grid.transform
        write_geotiff(scene_dir / f"{name}.tif", dn, transform=transform, crs=grid.crs, nodata=0, cog=True,
                      overview_resampling="average")
        _add_band_asset(item, name, f"./{name}.tif", dn.shape, transform)
    scl = scl10[::2, ::2].copy()
    scl[:, : valid_cols // 2] = 0
    scl[no_data[::2, ::2]] = 0
    write_geotiff(scene_dir / "SCL.tif", scl, transform=t20, crs=grid.crs, nodata=0, cog=True)
    _add_band_asset(item, "SCL", "./SCL.tif", scl.shape, t20)
    return item


def archive_edge(shape: tuple[int, int], data_coverage: float) -> np.ndarray:
    """(H, W) bool: beyond a slanted edge no scene has data (an archive's or an orbit's end), so
    tiles there are only partly observed."""
    h, w = shape
    rows, cols = np.mgrid[0:h, 0:w]
    return cols > data_coverage * w + 0.25 * (rows - h / 2)


def cloud_bank_mask(grid: AreaGrid) -> np.ndarray:
    """(H, W) bool: a square a quarter of a tile in area (half its side), in the middle of the
    area's north-west tile, where a persistent cloud bank sits (`demo.cloud_bank`)."""
    mask = np.zeros(grid.shape, bool)
    first = min(grid.tiles, key=lambda t: (-t.iy, t.ix))  # the north-west tile
    r, c = grid.offset(first)
    quarter = first.size // 4
    mask[r + quarter:r + 3 * quarter, c + quarter:c + 3 * quarter] = True
    return mask


def cloud_bank_dates(n_dates: int, share: float, rng: np.random.Generator) -> np.ndarray:
    """(n_dates,) bool: the scenes on which the cloud bank is there, `share` of them at random."""
    return rng.permutation(np.arange(n_dates) < round(share * n_dates))


def add_cloud_bank(refl: np.ndarray, scl10: np.ndarray, bank: np.ndarray) -> None:
    """Hide `bank` (H, W) of a scene's (bands, H, W) reflectance and SCL under an opaque cloud, in place."""
    refl[:, bank] = np.asarray(SPECTRA["cloud"], np.float32)[:, None]
    scl10[bank] = 9  # cloud, high probability


def make_demo(*, settings: DemoAreaSettings, out_dir: str | Path) -> Path:
    """Write the demo study area under `out_dir`; return the path of its STAC catalog. With
    `demo.series` set, its fields take real parcels' series (`cropmap.demo_series`)."""
    if settings.demo.series != "synthetic":
        from cropmap.demo_series import make_series_demo

        return make_series_demo(settings=settings, out_dir=out_dir)
    out_dir = Path(out_dir)
    grid = AreaGrid(tuple(tiles_for_area(settings.grid)))
    demo = settings.demo
    seed = demo.seed
    rng = np.random.default_rng(seed)
    log.info("demo: %d tiles, %s px, CRS %s, seed %d", len(grid.tiles), grid.shape, grid.crs, seed)
    land = make_landscape(grid.shape, rng, crop_share=demo.crop_share)
    glc_dir, ref_dir = out_dir / "glc", out_dir / "reference"
    write_products(land, grid, glc_dir, np.random.default_rng(seed + 1), errors=demo.product_errors)
    write_reference(land, grid, ref_dir, np.random.default_rng(seed + 2))

    catalog_dir = out_dir / "stac"
    catalog, collection = _new_catalog()
    dates = _scene_dates(settings.season, demo.revisit_days)
    scene_rng = np.random.default_rng(seed + 3)
    w = grid.shape[1]
    beyond_edge = archive_edge(grid.shape, demo.data_coverage)
    bank, bank_on = cloud_bank_mask(grid), cloud_bank_dates(len(dates), demo.cloud_bank, np.random.default_rng(seed + 5))
    items = []
    for k, date in enumerate(tqdm(dates, desc="demo scenes", unit="scene")):
        doy = date.timetuple().tm_yday
        u = scene_rng.uniform()
        cover = 0.0 if u < 0.35 else scene_rng.uniform(0.02, 0.3) if u < 0.8 else scene_rng.uniform(0.3, 0.6) if u < 0.9 else scene_rng.uniform(0.85, 0.98)
        refl = surface_reflectance(land, doy)
        refl, scl10 = atmosphere(refl, scene_rng, cover)
        refl += scene_rng.normal(0, 0.004, refl.shape).astype(np.float32)
        if bank_on[k]:
            add_cloud_bank(refl, scl10, bank)
        # the odd relative orbit sees only the eastern 85 % of the area
        valid_cols = 0 if k % 2 == 0 else int(0.15 * w) // 2 * 2
        items.append(write_scene(catalog_dir, k=k, date=date, refl=refl, scl10=scl10, grid=grid, no_data=beyond_edge,
                                 valid_cols=valid_cols, cover=float((scl10 >= 8).mean() if cover or bank_on[k] else 0.0)))
    return save_catalog(catalog, collection, items, catalog_dir)


def demo_area_config(*, name: str, tiles: int, seed: int = 42, tile_size: int = 512) -> dict[str, Any]:
    """A config (a file for `snakemake --configfile`) of a demo area of `tiles` x `tiles` tiles of
    `tile_size` px at 10 m near the embedded demo, with its sources under results/<name>/demo-data/
    and `area: <name>` so that only it runs."""
    x0, y0 = 136, 850  # the embedded demo's first tile: the landscape starts where it starts
    extent = tile_size * 10.0
    left, bottom = x0 * extent, y0 * extent
    right, top = left + tiles * extent, bottom + tiles * extent
    to_lonlat = Transformer.from_crs("EPSG:32614", "EPSG:4326", always_xy=True)
    # a lon/lat box strictly inside the square of tiles (its edges bend in UTM)
    xs, ys = to_lonlat.transform([left + 50, right - 50, left + 50, right - 50], [bottom + 50, bottom + 50, top - 50, top - 50])
    bbox = [round(v, 6) for v in (max(xs[0], xs[2]), max(ys[0], ys[1]), min(xs[1], xs[3]), min(ys[2], ys[3]))]
    data = f"results/{name}/demo-data"
    return {
        "area": name,
        "areas": {name: {
            "aoi": {"bbox": bbox}, "crs": "EPSG:32614", "resolution": 10, "tile_size": tile_size,
            "season": {"start": "2023-03-01", "end": "2023-10-31"},
            "stac": {"catalog": f"{data}/stac/catalog.json", "collection": "sentinel-2-l2a", "max_cloud_cover": 95},
            "demo": {"seed": seed, "revisit_days": 5},
            "glc": {"worldcover": {"type": "esa-worldcover", "path": f"{data}/glc/worldcover.tif"},
                    "esri": {"type": "esri-lulc", "path": f"{data}/glc/esri_lulc.tif"},
                    "glad": {"type": "glad-cropland", "path": f"{data}/glc/glad_cropland.tif"}},
            "reference": {"path": f"{data}/reference/cropland_truth.tif", "crop_classes": [1], "nodata": 255},
        }},
    }


def write_demo_area_config(*, name: str, tiles: int, seed: int, out_path) -> dict[str, Any]:
    """`demo_area_config` checked against the schema and written as YAML to `out_path`."""
    import json

    import yaml

    from cropmap.config import validate_config

    config = demo_area_config(name=name, tiles=tiles, seed=seed)
    validate_config(json.loads(json.dumps(config)))  # a copy: validation fills in defaults
    with atomic_path(out_path) as tmp:
        tmp.write_text(f"# a demo area of {tiles} x {tiles} tiles: snakemake --cores all --configfile {out_path}\n"
                       + yaml.safe_dump(config, sort_keys=False))
    return config
