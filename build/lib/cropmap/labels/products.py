"""Global land-cover products: legends, recoding to crop / non-crop, reprojection onto a tile.

Recoded rasters use 1 = crop, 0 = non-crop, 255 = no data (no coverage, nodata or ignored class).
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window, from_bounds

from cropmap.conventions import CROP, NODATA, NONCROP
from cropmap.errors import DataError
from cropmap.grid import Tile

__all__ = ["Legend", "PRODUCTS", "legend_for", "recode", "product_sources",
           "product_on_tile"]

@dataclass(frozen=True)
class Legend:
    """Which class values of a product mean cropland.

    `noncrop_classes=None` means every valid value that is neither crop nor ignored is non-crop.
    """

    crop_classes: tuple[int, ...]
    noncrop_classes: tuple[int, ...] | None = None
    ignore_classes: tuple[int, ...] = field(default_factory=tuple)
    nodata: int | None = None


def _r(a: int, b: int) -> tuple[int, ...]:
    return tuple(range(a, b + 1))


# Legends of the products users combine most, as their documentation gives them; a config entry
# may give its own instead (`crop_classes`, `noncrop_classes`, `ignore_classes`, `nodata`).
PRODUCTS: dict[str, Legend] = {
    # ESA WorldCover 10 m 2020 v100 / 2021 v200 (Product User Manual, https://esa-worldcover.org/en/data-access):
    # 10 tree cover, 20 shrubland, 30 grassland, 40 cropland, 50 built-up, 60 bare / sparse vegetation,
    # 70 snow and ice, 80 permanent water, 90 herbaceous wetland, 95 mangroves, 100 moss and lichen; 0 no data
    "esa-worldcover": Legend(crop_classes=(40,), nodata=0),
    "esa-worldcover-2020": Legend(crop_classes=(40,), nodata=0),
    "esa-worldcover-2021": Legend(crop_classes=(40,), nodata=0),
    # Esri 10 m Annual Land Use Land Cover (Impact Observatory, io-lulc-annual-v02 on the Planetary
    # Computer, https://planetarycomputer.microsoft.com/dataset/io-lulc-annual-v02): 1 water, 2 trees,
    # 4 flooded vegetation, 5 crops, 7 built area, 8 bare ground, 9 snow / ice, 10 clouds, 11 rangeland; 0 no data
    "esri-lulc": Legend(crop_classes=(5,), ignore_classes=(10,), nodata=0),
    # Dynamic World V1 `label` band (https://developers.google.com/earth-engine/datasets/catalog/GOOGLE_DYNAMICWORLD_V1):
    # 0 water, 1 trees, 2 grass, 3 flooded vegetation, 4 crops, 5 shrub and scrub, 6 built, 7 bare,
    # 8 snow and ice. Earth Engine masks pixels without an observation; 0 is water, so an export's fill
    # must be another value: 255, the uint8 fill cropmap expects (give `nodata:` in config otherwise)
    "dynamic-world": Legend(crop_classes=(4,), nodata=255),
    # USDA NASS Cropland Data Layer (https://www.nass.usda.gov/Research_and_Science/Cropland/metadata/):
    # 1-61 field crops (61 fallow / idle cropland), 66-77 tree crops and orchards, 204-254 vegetables,
    # fruit and double crops; 62-65 and 81-195 are pasture, forest, shrub, water, developed, wetland; 0 background
    "usda-cdl": Legend(crop_classes=_r(1, 61) + _r(66, 77) + _r(204, 254), nodata=0),
    # USDA NASS Cultivated Layer (https://www.nass.usda.gov/Research_and_Science/Cropland/Release/):
    # 1 non-cultivated, 2 cultivated; 0 background
    "usda-cdl-cultivated": Legend(crop_classes=(2,), noncrop_classes=(1,), nodata=0),
    # GLAD Global cropland extent (Potapov et al. 2022, Nature Food; https://glad.umd.edu/dataset/croplands):
    # 1 cropland, 0 other land; 255 fill
    "glad-cropland": Legend(crop_classes=(1,), noncrop_classes=(0,), nodata=255),
    # GLC_FCS30 (Zhang et al. 2021, ESSD 13, 2753): 10 rainfed cropland, 11 herbaceous cover cropland,
    # 12 tree or shrub cover (orchard), 20 irrigated cropland; 250 filled value; 0 no data
    "glc-fcs30": Legend(crop_classes=(10, 11, 12, 20), nodata=0, ignore_classes=(250,)),
    # CLCD, China Land Cover Dataset (Yang & Huang 2021, ESSD 13, 3907): 1 cropland, 2 forest, 3 shrub,
    # 4 grassland, 5 water, 6 snow / ice, 7 barren, 8 impervious, 9 wetland; 0 no data
    "clcd": Legend(crop_classes=(1,), nodata=0),
    # FROM-GLC10 (Gong et al. 2019, Science Bulletin 64, 370): 10 cropland, 20 forest, 30 grassland,
    # 40 shrubland, 50 wetland, 60 water, 70 tundra, 80 impervious, 90 bare land, 100 snow / ice; 0 no data
    "from-glc10": Legend(crop_classes=(10,), nodata=0),
}


def legend_for(product: dict[str, Any]) -> Legend:
    """The legend of a product entry of the config (registry type, or legend given in config)."""
    if "crop_classes" in product:
        base = PRODUCTS.get(product.get("type", ""), Legend(crop_classes=()))
        return Legend(
            crop_classes=tuple(product["crop_classes"]),
            noncrop_classes=tuple(product["noncrop_classes"]) if "noncrop_classes" in product else base.noncrop_classes,
            ignore_classes=tuple(product.get("ignore_classes", base.ignore_classes)),
            nodata=product.get("nodata", base.nodata),
        )
    legend = PRODUCTS[product["type"]]
    if "nodata" in product:
        legend = Legend(legend.crop_classes, legend.noncrop_classes, legend.ignore_classes, product["nodata"])
    return legend


def recode(values: np.ndarray, legend: Legend) -> np.ndarray:
    """Class values -> uint8 1 (crop), 0 (non-crop), 255 (no data / ignored)."""
    out = np.full(values.shape, NODATA, dtype=np.uint8)
    crop = np.isin(values, legend.crop_classes)
    if legend.noncrop_classes is None:
        noncrop = ~crop & ~np.isin(values, legend.ignore_classes)
        if legend.nodata is not None:
            noncrop &= values != legend.nodata
    else:
        noncrop = np.isin(values, legend.noncrop_classes)
    out[noncrop] = NONCROP
    out[crop] = CROP
    return out


def product_sources(product: dict[str, Any], tile: Tile) -> list[str]:
    """The files (or URLs) of a product that may cover `tile`.

    `path` is one raster, VRT or URL, or a glob of tiles; `stac` searches a STAC API or a local
    static catalog for the collection's items over the tile and takes their `asset`.
    """
    if "stac" not in product:
        path = product["path"]
        if "://" not in path and any(ch in path for ch in "*?["):
            files = sorted(glob.glob(path))
            if not files:
                raise DataError(f"no file matches the product path {path!r}")
            return files
        return [path]
    from shapely.geometry import box

    from cropmap.grid import reproject_geometry
    from cropmap.acquisition.search import find_items

    stac = product["stac"]
    footprint = reproject_geometry(box(*tile.bounds), tile.crs, "EPSG:4326")
    items = find_items(stac, footprint, datetime=stac.get("datetime"))
    hrefs = [item.assets[stac["asset"]].get_absolute_href() for item in items if stac["asset"] in item.assets]
    if product.get("sign") == "planetary-computer":
        import planetary_computer

        hrefs = [planetary_computer.sign(h) for h in hrefs]
    return hrefs


def product_on_tile(sources: str | Sequence[str], legend: Legend, tile: Tile, *,
                    crop_fraction_threshold: float = 0.5) -> np.ndarray:
    """Read the parts of a product's files under `tile`, recode them, resample onto the tile grid.

    Only the window under the tile is read from each file. A product finer than the tile is
    aggregated by the fraction of crop among valid source pixels (crop where it reaches
    `crop_fraction_threshold`; no data where fewer than half the source pixels are valid); a
    coarser or equal one is taken by nearest neighbour. Where several files cover a pixel, the
    first with data wins.
    """
    out = np.full(tile.shape, NODATA, dtype=np.uint8)
    for path in [sources] if isinstance(sources, str) else sources:
        part = _one_file_on_tile(path, legend, tile, crop_fraction_threshold)
        fill = (out == NODATA) & (part != NODATA)
        out[fill] = part[fill]
    return out


def _one_file_on_tile(path: str, legend: Legend, tile: Tile, crop_fraction_threshold: float) -> np.ndarray:
    out = np.full(tile.shape, NODATA, dtype=np.uint8)
    try:
        src = rasterio.open(path)
    except rasterio.RasterioIOError as err:
        raise DataError(f"cannot open land-cover product {path}: {err}") from None
    with src:
        left, bottom, right, top = transform_bounds(tile.crs, src.crs, *tile.bounds, densify_pts=21)
        window = from_bounds(left, bottom, right, top, transform=src.transform)
        # two source pixels of margin so that edge pixels of the tile see all their sources
        window = Window(window.col_off - 2, window.row_off - 2, window.width + 4, window.height + 4)
        full = Window(0, 0, src.width, src.height)
        try:
            window = window.intersection(full).round_offsets(op="floor").round_lengths(op="ceil")
        except rasterio.errors.WindowError:
            return out  # the product does not cover the tile
        if window.width <= 0 or window.height <= 0:
            return out
        values = src.read(1, window=window)
        src_transform = src.window_transform(window)
        src_crs = src.crs
        src_pixels_across = (right - left) / abs(src.transform.a)
    recoded = recode(values, legend)
    finer = src_pixels_across > 1.5 * tile.size
    if not finer:
        reproject(recoded, out, src_transform=src_transform, src_crs=src_crs, src_nodata=NODATA,
                  dst_transform=tile.transform, dst_crs=tile.crs, dst_nodata=NODATA,
                  resampling=Resampling.nearest)
        return out
    valid = (recoded != NODATA).astype(np.float32)
    crop = (recoded == CROP).astype(np.float32)
    valid_frac = np.zeros(tile.shape, np.float32)
    crop_frac = np.zeros(tile.shape, np.float32)
    for source, dest in ((valid, valid_frac), (crop, crop_frac)):
        reproject(source, dest, src_transform=src_transform, src_crs=src_crs,
                  dst_transform=tile.transform, dst_crs=tile.crs, resampling=Resampling.average)
    has_data = valid_frac >= 0.5
    share = np.divide(crop_frac, valid_frac, out=np.zeros_like(crop_frac), where=valid_frac > 0)
    out[has_data] = np.where(share[has_data] >= crop_fraction_threshold, CROP, NONCROP)
    return out
