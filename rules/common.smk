# Config validation (before any job) and the input functions of the rules.
import functools
import sys

from cropmap.config import ABLATION_VARIANTS, OWN_PRETRAINING, ablation_areas, area_section, ablation_variants, grid_settings, selected_areas, settings_json, shared_pretraining_areas, validate_config
from cropmap.errors import ConfigError
from cropmap.grid import blocks_for_area

try:
    validate_config(config)
except ConfigError as err:
    sys.exit(f"cropmap: config error: {err}")


wildcard_constraints:
    area=r"[A-Za-z0-9_-]+",
    kind="pretrain|train",
    tile=r"x-?\d+y-?\d+",
    block=r"bx-?\d+y-?\d+",


@functools.cache
def block_tiles(area):
    """{block id: its tile ids} of the area, computed once per run (input functions ask for every job)."""
    blocks = blocks_for_area(grid_settings(config, area), config["areas"][area]["block_tiles"])
    return {block: [tile.id for tile in blocks[block].tiles] for block in blocks}


@functools.cache
def tile_ids(area):
    return [tile for tiles in block_tiles(area).values() for tile in tiles]


def step_settings(step):
    """The step's settings as JSON: a params value, so a change reruns exactly that step."""
    return lambda wildcards: settings_json(config, wildcards.area, step)


def all_outputs():
    outputs = []
    for area in selected_areas(config):
        outputs += [
            f"results/{area}/cropland.tif",
            f"results/{area}/cropland_probability.tif",
            f"results/{area}/assessment/metrics.json",
            f"results/{area}/labels/quality.json",
            f"results/{area}/report/cropland.png",
            f"results/{area}/report/availability.png",
            f"results/{area}/assessment/area.json",
            f"results/{area}/cropland.stac.json",
            f"results/{area}/cropland_uncertainty.tif",
            f"results/{area}/assessment/suggested.csv",
        ]
    return outputs


def local_path(path):
    """`path` as an input file when it is local (a URL is read by GDAL / the STAC client)."""
    return [] if "://" in path else [path]


def stac_catalog(wildcards):
    stac = config["areas"][wildcards.area]["stac"]
    return local_path(stac["catalog"]) if "catalog" in stac else []


def area_product_sources(wildcards):
    """The area's product files as inputs; a glob, URL or STAC source is read by the step itself."""
    paths = [product.get("path", "") for product in config["areas"][wildcards.area]["glc"].values()]
    return [p for path in paths if path and not any(ch in path for ch in "*?[") for p in local_path(path)]


def area_files(pattern):
    """All tiles' files of an area, e.g. area_files("sits/{tile}.nc")."""
    return lambda wildcards: [
        f"results/{wildcards.area}/{pattern.format(tile=tile)}" for tile in tile_ids(wildcards.area)
    ]


def block_files(pattern):
    """All blocks' files of an area, e.g. block_files("labels/{block}.tif"); other {wildcards} of the
    pattern are the job's."""
    return lambda wildcards: [
        f"results/{wildcards.area}/{pattern.format(**dict(wildcards.items()), block=block)}"
        for block in block_tiles(wildcards.area)
    ]


def block_cubes(wildcards):
    return [f"results/{wildcards.area}/sits/{tile}.nc" for tile in block_tiles(wildcards.area)[wildcards.block]]


def patch_inputs(wildcards):
    """A block's cubes and, for training patches, its labels and the area's labels of one's own."""
    inputs = {"cubes": block_cubes(wildcards)}
    if wildcards.kind == "train":
        inputs["labels"] = f"results/{wildcards.area}/labels/{wildcards.block}.tif"
        own = config["areas"][wildcards.area].get("labels")
        if own:
            inputs["own_labels"] = own["path"]
    return inputs


# `predict.method`: which blocks make the map, and the other methods' maps the assessment reports
METHOD_BLOCKS = {
    "network": "predict/{block}.tif",
    "forest": "forest/predict/{block}.tif",
    "ensemble": "ensemble/predict/{block}.tif",
}


def map_blocks(wildcards):
    """The block predictions `cropland.tif` is the mosaic of: those of `predict.method`."""
    return block_files(METHOD_BLOCKS[config["predict"]["method"]])(wildcards)


def method_blocks(wildcards):
    return block_files(METHOD_BLOCKS[wildcards.method])(wildcards)


def assessed_methods(wildcards):
    """{name: map} of the network and the forest, assessed beside the map: `cropland.tif` itself for
    the method that makes it, else that method's own mosaic."""
    shipped = config["predict"]["method"]
    return {method: f"results/{wildcards.area}/cropland.tif" if method == shipped
            else f"results/{wildcards.area}/methods/{method}/cropland.tif" for method in ("network", "forest")}


def reference_source(wildcards):
    ref = config["areas"][wildcards.area].get("reference")
    return local_path(ref["path"]) if ref else []


def accuracy_outputs(wildcards):
    """The assessment and area estimate an area's STAC item reports, where it has a reference."""
    if not config["areas"][wildcards.area].get("reference"):
        return {}
    return {"metrics": f"results/{wildcards.area}/assessment/metrics.json",
            "area_estimate": f"results/{wildcards.area}/assessment/area.json"}


def labelled_sample(wildcards):
    """The interpreted sample when the config names one (else the step labels it from the reference)."""
    path = config["assess"].get("labelled_sample")
    if path:
        return local_path(path)
    return reference_source(wildcards)


# `snakemake ablation` (rules/ablation.smk)
def ablation_maps(wildcards):
    """{name: map} of every variant and random-forest seed of the area."""
    seeds = config["ablation"]["seeds"]
    names = [*ablation_variants(config), "random_forest"]
    return {f"{name}@{seed}": f"results/{wildcards.area}/ablation/{name}/seed{seed}/cropland.tif"
            for name in names for seed in seeds}


def ablation_models(wildcards):
    return [f"results/{wildcards.area}/ablation/{name}/seed{seed}/model.pt"
            for name in ablation_variants(config) for seed in config["ablation"]["seeds"]]


def pretrained_checkpoint(wildcards):
    """The checkpoint `train` starts from: the area's `pretrain.from` (another area's or season's
    pretraining, built first when this workflow makes it), else the area's own."""
    source = area_section(config, config["areas"][wildcards.area], "pretrain")["from"]
    return source or f"results/{wildcards.area}/model/pretrained.pt"


def pretraining_patches(wildcards):
    """The area's pretraining patches, then those of each area `pretrain.with_areas` names (the
    order the pretraining's `other_seasons` settings expect)."""
    areas = [wildcards.area, *shared_pretraining_areas(config, wildcards.area)]
    return [f"results/{area}/patches/pretrain/{block}.nc" for area in areas for block in block_tiles(area)]


def ablation_pretrained(wildcards):
    """The variant's own pretrained model when it changes pretraining, else the main one."""
    if wildcards.variant in OWN_PRETRAINING:
        return f"results/{wildcards.area}/ablation/{wildcards.variant}/pretrained.pt"
    return f"results/{wildcards.area}/model/pretrained.pt"
