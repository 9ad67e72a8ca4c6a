"""The demo's scenes as a local static STAC catalog: Sentinel-2 L2A-like COGs (10 bands, the 20 m
bands at 20 m, and SCL) with the DN conventions and item metadata of the public catalogs."""

from __future__ import annotations

import datetime as dt
from typing import Any
from pathlib import Path

import numpy as np
import pystac
from affine import Affine
from shapely.geometry import box, mapping

from cropmap.grid import AreaGrid, reproject_geometry
from cropmap.io import write_geotiff

__all__ = ["BAND_INFO", "BAND_ORDER", "new_catalog", "save_catalog", "write_scene"]

BANDS_10M = ("B02", "B03", "B04", "B08")
BAND_INFO = {  # name: (common name, centre wavelength in micrometres, resolution in m)
    "B02": ("blue", 0.49, 10), "B03": ("green", 0.56, 10), "B04": ("red", 0.665, 10),
    "B05": ("rededge", 0.704, 20), "B06": ("rededge", 0.74, 20), "B07": ("rededge", 0.783, 20),
    "B08": ("nir", 0.842, 10), "B8A": ("nir08", 0.865, 20), "B11": ("swir16", 1.61, 20),
    "B12": ("swir22", 2.19, 20),
}
BAND_ORDER = tuple(BAND_INFO)
# surface reflectance spectra in BAND_ORDER

DN_OFFSET = 1000  # processing baseline >= 04.00
DN_SCALE = 10000


def _to_dn(refl: np.ndarray) -> np.ndarray:
    return np.clip(np.round(refl * DN_SCALE) + DN_OFFSET, 1, 65535).astype(np.uint16)


def _down2(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[-2:]
    return a.reshape(*a.shape[:-2], h // 2, 2, w // 2, 2).mean(axis=(-3, -1))


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


def new_catalog() -> tuple[pystac.Catalog, pystac.Collection]:
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
