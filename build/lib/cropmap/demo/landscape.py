"""The synthetic landscape of the demo areas: field parcels with crop calendars, grassland, forest,
water and built-up land; its surface reflectance on a day, the atmosphere over it (clouds,
shadows, cirrus, a cloud bank), the archive's edge, and the reference drawn from it."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pyproj import Transformer
from scipy import ndimage
from scipy.spatial import cKDTree

from cropmap.conventions import NODATA
from cropmap.demo.catalog import BAND_ORDER
from cropmap.grid import AreaGrid
from cropmap.io import atomic_path, write_geotiff

__all__ = ["CROP_CLASSES", "LANDCOVER_CLASSES", "Landscape", "SPECTRA", "add_cloud_bank", "archive_edge", "atmosphere",
           "cloud_bank_dates", "cloud_bank_mask", "make_landscape", "surface_reflectance", "write_reference"]

# true land-cover classes of the demo landscape
LANDCOVER_CLASSES = {1: "maize", 2: "soybean", 3: "winter wheat", 4: "wheat then soybean",
                     5: "grassland", 6: "forest", 7: "water", 8: "built-up"}
CROP_CLASSES = (1, 2, 3, 4)

BANDS_10M = ("B02", "B03", "B04", "B08")

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
