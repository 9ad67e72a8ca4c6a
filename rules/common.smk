# Config validation (before any job) and the input functions of the rules.
import functools
import sys

from cropmap.config import settings_json, validate_config
from cropmap.errors import ConfigError
from cropmap.grid import tiles_for_area

try:
    validate_config(config)
except ConfigError as err:
    sys.exit(f"cropmap: config error: {err}")


wildcard_constraints:
    area=r"[A-Za-z0-9_-]+",
    tile=r"x-?\d+y-?\d+",
    product=r"[A-Za-z0-9_-]+",


@functools.cache
def tile_ids(area):
    """The area's tile ids, computed once per run (input functions ask for them for every job)."""
    grid = {k: config["areas"][area][k] for k in ("aoi", "crs", "resolution", "tile_size")}
    return [tile.id for tile in tiles_for_area(grid)]


def step_settings(step):
    """The step's settings as JSON: a params value, so a change reruns exactly that step."""
    return lambda wildcards: settings_json(config, wildcards.area, step)


def all_outputs():
    outputs = []
    for area in config["areas"]:
        outputs += [
            f"results/{area}/cropland.tif",
            f"results/{area}/cropland_probability.tif",
            f"results/{area}/assessment/metrics.json",
            f"results/{area}/labels/quality.json",
            f"results/{area}/report/cropland.png",
            f"results/{area}/report/availability.png",
            f"results/{area}/assessment/area.json",
            f"results/{area}/cropland.stac.json",
        ]
    return outputs


def local_path(path):
    """`path` as an input file when it is local (a URL is read by GDAL / the STAC client)."""
    return [] if "://" in path else [path]


def stac_catalog(wildcards):
    stac = config["areas"][wildcards.area]["stac"]
    return local_path(stac["catalog"]) if "catalog" in stac else []


def product_source(wildcards):
    """A product's file as input; a glob, URL or STAC source is read by the step itself."""
    product = config["areas"][wildcards.area]["glc"][wildcards.product]
    path = product.get("path", "")
    return [] if not path or any(ch in path for ch in "*?[") else local_path(path)


def area_files(pattern):
    """All tiles' files of an area, e.g. area_files("sits/{tile}.nc")."""
    return lambda wildcards: [
        f"results/{wildcards.area}/{pattern.format(tile=tile)}" for tile in tile_ids(wildcards.area)
    ]


def tile_products(wildcards):
    return [
        f"results/{wildcards.area}/glc/{product}/{wildcards.tile}.tif"
        for product in config["areas"][wildcards.area]["glc"]
    ]


def product_tiles(area):
    """{product: its recoded files, one per tile} of an area."""
    return {
        product: [f"results/{area}/glc/{product}/{tile}.tif" for tile in tile_ids(area)]
        for product in config["areas"][area]["glc"]
    }


def product_mosaic_args(wildcards):
    """--product NAME FILE... for each product of the area."""
    return " ".join(
        f"--product {product} {' '.join(files)}" for product, files in product_tiles(wildcards.area).items()
    )


def all_product_tiles(wildcards):
    return [f for files in product_tiles(wildcards.area).values() for f in files]


def reference_source(wildcards):
    ref = config["areas"][wildcards.area].get("reference")
    return local_path(ref["path"]) if ref else []


def labelled_sample(wildcards):
    """The interpreted sample when the config names one (else the step labels it from the reference)."""
    path = config["assess"].get("labelled_sample")
    if path:
        return local_path(path)
    return reference_source(wildcards)
