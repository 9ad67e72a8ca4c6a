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

import datetime as dt
import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cropmap.demo.catalog import new_catalog, save_catalog, write_scene
from cropmap.demo.landscape import (add_cloud_bank, archive_edge, atmosphere, cloud_bank_dates, cloud_bank_mask,
                                    make_landscape, surface_reflectance, write_reference)
from cropmap.demo.products import write_products
from cropmap.grid import AreaGrid, tiles_for_area
from cropmap.settings import DemoAreaSettings, SeasonSettings

log = logging.getLogger(__name__)

__all__ = ["make_synthetic_demo"]


def _scene_dates(season: SeasonSettings, revisit_days: int) -> list[dt.date]:
    start, end = dt.date.fromisoformat(season.start), dt.date.fromisoformat(season.end)
    return [start + dt.timedelta(days=d) for d in range(1, (end - start).days + 1, revisit_days)]


def make_synthetic_demo(*, settings: DemoAreaSettings, out_dir: str | Path) -> Path:
    """Write the synthetic demo study area under `out_dir`; return the path of its STAC catalog."""
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
    catalog, collection = new_catalog()
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
