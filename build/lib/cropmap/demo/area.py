"""A demo area from its settings (`cropmap demo`), and the config of a larger synthetic demo area
(`cropmap demo-config`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyproj import Transformer

from cropmap.io import atomic_path
from cropmap.settings import DemoAreaSettings

__all__ = ["demo_area_config", "make_demo", "write_demo_area_config"]


def make_demo(*, settings: DemoAreaSettings, out_dir: str | Path) -> Path:
    """Write the demo study area under `out_dir`; return the path of its STAC catalog: the
    generator's synthetic landscape, or with `demo.series` set, fields that carry real parcels'
    series (`cropmap.demo.series`)."""
    if settings.demo.series != "synthetic":
        from cropmap.demo.series import make_series_demo

        return make_series_demo(settings=settings, out_dir=out_dir)
    from cropmap.demo.synthetic import make_synthetic_demo

    return make_synthetic_demo(settings=settings, out_dir=out_dir)


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
