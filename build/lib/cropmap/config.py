"""Configuration: schema validation with defaults, semantic checks, and per-step settings.

Each step receives only the part of the configuration it depends on (`step_settings`), so that
Snakemake's params-based rerun trigger reruns exactly the steps whose settings changed.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
from importlib import resources
from collections.abc import Callable
from typing import Any

import jsonschema
import yaml

from cropmap.errors import ConfigError

__all__ = ["ABLATION_VARIANTS", "AREA_SECTIONS", "OWN_PRETRAINING", "area_section", "ablation_areas", "ablation_variants", "load_schema", "load_config", "selected_areas", "shared_pretraining_areas",
           "grid_settings", "settings_json", "step_settings", "typed_settings",
           "validate_config"]


def load_schema() -> dict[str, Any]:
    text = resources.files("cropmap").joinpath("schemas/config.schema.yaml").read_text()
    return yaml.safe_load(text)


def _extend_with_default(validator_class):
    """A validator that fills in `default` values while validating (jsonschema FAQ recipe)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_DefaultFillingValidator = _extend_with_default(jsonschema.Draft202012Validator)


def _key_path(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    """One line naming the key and what was expected."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        known = ", ".join(sorted(error.schema.get("properties", {})))
        keys = ", ".join(_key_path([*path, e]) for e in extra)
        return f"unknown key {keys} (expected one of: {known})"
    if error.validator == "required":
        return f"{_key_path(path)}: {error.message}"
    if error.validator == "oneOf" and path and path[-1] == "aoi":
        return f"{_key_path(path)}: give exactly one of 'bbox' (lon/lat) or 'file'"
    if error.validator == "oneOf" and path and path[-1] == "stac":
        return f"{_key_path(path)}: give exactly one of 'api' (URL) or 'catalog' (local path)"
    if error.validator == "oneOf" and len(path) >= 2 and path[-2] == "glc":
        return f"{_key_path(path)}: give exactly one of 'path' or 'stac'"
    if error.validator == "anyOf" and len(path) >= 2 and path[-2] == "glc":
        return (
            f"{_key_path(path)}: a product needs 'type' (one of {', '.join(_known_products())}) "
            "or a legend given by 'crop_classes'"
        )
    if error.validator == "type":
        return f"{_key_path(path)}: expected {error.validator_value}, got {error.instance!r}"
    return f"{_key_path(path)}: {error.message}"


def _known_products() -> list[str]:
    from cropmap.labels.products import PRODUCTS

    return sorted(PRODUCTS)


STAC_PRESETS = {
    "earth-search": {"api": "https://earth-search.aws.element84.com/v1", "collection": "sentinel-2-l2a"},
    "earth-search-c1": {"api": "https://earth-search.aws.element84.com/v1", "collection": "sentinel-2-c1-l2a"},
    "planetary-computer": {"api": "https://planetarycomputer.microsoft.com/api/stac/v1",
                           "collection": "sentinel-2-l2a", "sign": "planetary-computer"},
}


def _apply_stac_presets(config: dict[str, Any]) -> None:
    """Fill `stac.api`, `collection` and `sign` from `stac.preset`; values given in config win."""
    areas = config.get("areas")
    for area in areas.values() if isinstance(areas, dict) else []:
        stac = area.get("stac") if isinstance(area, dict) else None
        if isinstance(stac, dict) and stac.get("preset") in STAC_PRESETS and "catalog" not in stac:
            for key, value in STAC_PRESETS[stac["preset"]].items():
                stac.setdefault(key, value)


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Validate `config` in place against the schema, fill defaults, check semantics.

    Raises `ConfigError` with one line naming the offending key.
    """
    _apply_stac_presets(config)
    validator = _DefaultFillingValidator(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.path)))
    if errors:
        # the deepest error is the most specific one
        error = max(errors, key=lambda e: len(e.absolute_path))
        raise ConfigError(_describe(error))
    predict = config["predict"]
    if predict["overlap"] * 2 >= predict["window"]:
        raise ConfigError(
            f"predict.overlap: {predict['overlap']} must be less than half of predict.window "
            f"({predict['window']})"
        )
    for step in ("pretrain", "train"):
        if config[step]["patch_size"] > config["patches"]["size"]:
            raise ConfigError(f"{step}.patch_size: {config[step]['patch_size']} is larger than the stored patches "
                              f"(patches.size = {config['patches']['size']})")
    schema = load_schema()
    for name, area in config["areas"].items():
        _check_learning_overrides(name, area, config, schema)
    for name in config["ablation"].get("variants", []):
        if name not in ABLATION_VARIANTS:
            raise ConfigError(f"ablation.variants: no variant named {name!r} (variants: {', '.join(ABLATION_VARIANTS)})")
    for name in [*selected_areas(config), *config["ablation"].get("areas", [])]:
        if name not in config["areas"]:
            raise ConfigError(f"area: no area named {name!r} (areas: {', '.join(config['areas'])})")
    for name, area in config["areas"].items():
        _check_area(name, area, config)
        _check_shared_pretraining(name, area, config)
    products = {p for area in config["areas"].values() for p in area["glc"]}
    for product_name in config["consensus"]["weights"]:
        if product_name not in products:
            raise ConfigError(f"consensus.weights.{product_name}: no area has a product of that name")
    _check_paths(config)
    return config


def selected_areas(config: dict[str, Any]) -> list[str]:
    """The areas a run makes: those named by `area` (comma-separated), else all of them."""
    if not config.get("area"):
        return list(config["areas"])
    return [name.strip() for name in str(config["area"]).split(",") if name.strip()]


def _config_paths(config: dict[str, Any]):
    """(key, path) of every local path in the config."""
    for name, area in config["areas"].items():
        key = f"areas.{name}"
        if "file" in area["aoi"]:
            yield f"{key}.aoi.file", area["aoi"]["file"]
        if "catalog" in area["stac"]:
            yield f"{key}.stac.catalog", area["stac"]["catalog"]
        for product_name, product in area["glc"].items():
            if "path" in product:
                yield f"{key}.glc.{product_name}.path", product["path"]
            if "catalog" in product.get("stac", {}):
                yield f"{key}.glc.{product_name}.stac.catalog", product["stac"]["catalog"]
        if area.get("reference"):
            yield f"{key}.reference.path", area["reference"]["path"]
        if area.get("labels"):
            yield f"{key}.labels.path", area["labels"]["path"]
    if config["assess"].get("labelled_sample"):
        yield "assess.labelled_sample", config["assess"]["labelled_sample"]


def _check_paths(config: dict[str, Any]) -> None:
    """Paths stay inside the working directory unless `allow_absolute_paths` is true."""
    if config["allow_absolute_paths"]:
        return
    for key, path in _config_paths(config):
        if "://" in path:
            continue  # a URL
        if os.path.isabs(path) or os.path.normpath(path).startswith(".."):
            raise ConfigError(
                f"{key}: {path!r} is outside the working directory; use a path inside it, or set "
                "allow_absolute_paths: true"
            )


def _check_area(name: str, area: dict[str, Any], config: dict[str, Any]) -> None:
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    from cropmap.labels.products import PRODUCTS

    key = f"areas.{name}"
    start = _parse_date(area["season"]["start"], f"{key}.season.start")
    end = _parse_date(area["season"]["end"], f"{key}.season.end")
    if end <= start:
        raise ConfigError(f"{key}.season.end: {end} is not after season.start {start}")
    if (end - start).days > 366:
        raise ConfigError(f"{key}.season.end: the season {start} .. {end} lasts {(end - start).days} days; a season "
                          "spans at most a year (check the years)")
    if "bbox" in area["aoi"]:
        west, south, east, north = area["aoi"]["bbox"]
        if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
            raise ConfigError(
                f"{key}.aoi.bbox: {area['aoi']['bbox']} is empty or not lon/lat "
                "(expected [west, south, east, north] in degrees with west < east, south < north)"
            )
    if area["crs"] != "auto":
        try:
            crs = CRS.from_user_input(area["crs"])
        except CRSError:
            raise ConfigError(f"{key}.crs: {area['crs']!r} is not a known CRS (e.g. 'EPSG:32614' or 'auto')") from None
        if not crs.is_projected:
            raise ConfigError(f"{key}.crs: {area['crs']!r} is not a projected CRS in metres")
    for product_name, product in area["glc"].items():
        if "type" in product and product["type"] not in PRODUCTS:
            raise ConfigError(
                f"{key}.glc.{product_name}.type: unknown product {product['type']!r} "
                f"(expected one of: {', '.join(sorted(PRODUCTS))}, or give crop_classes)"
            )
    if area.get("labels"):
        _check_own_labels_are_not_the_assessment(name, area["labels"]["path"], config)
    window, overlap = config["predict"]["window"], config["predict"]["overlap"]
    patch_size = area_section(config, area, "patches")["size"]
    if area["tile_size"] < patch_size:
        raise ConfigError(f"{key}.tile_size: {area['tile_size']} is smaller than patches.size ({patch_size})")
    if area["tile_size"] < window:
        raise ConfigError(f"{key}.tile_size: {area['tile_size']} is smaller than predict.window ({window})")
    if area["tile_size"] % (window - overlap):
        raise ConfigError(
            f"{key}.tile_size: {area['tile_size']} is not a multiple of the window stride "
            f"(predict.window - predict.overlap = {window - overlap})"
        )
    if "file" in area["aoi"]:
        from cropmap.grid import aoi_geometry

        try:
            aoi_geometry(area["aoi"])
        except ConfigError as err:
            raise ConfigError(f"{key}.{err}") from None


def _check_own_labels_are_not_the_assessment(name: str, path: str, config: dict[str, Any]) -> None:
    """A labelled assessment sample must never also train the map it assesses."""
    own = os.path.realpath(path)
    samples = [os.path.realpath(f"results/{area}/assessment/sample{suffix}")
               for area in config["areas"] for suffix in (".csv", ".gpkg", "_labelled.csv")]
    if config["assess"].get("labelled_sample"):
        samples.append(os.path.realpath(config["assess"]["labelled_sample"]))
    if own in samples:
        raise ConfigError(
            f"areas.{name}.labels.path: {path!r} is the accuracy assessment's sample; a sample that trains the "
            "map cannot assess it without bias. Label other points (e.g. assessment/suggested.csv) for training, "
            "or split the sample into two files and say which one trains"
        )


# sections an area may override for itself (`areas.<name>.train: {steps: 150}`): the rest of the
# section comes from the top level
AREA_SECTIONS = ("model", "patches", "pretrain", "train")


def area_section(config: dict[str, Any], area: dict[str, Any], section: str) -> dict[str, Any]:
    """The top-level `section` with the area's own overrides of it."""
    return {**config[section], **area.get(section, {})}


def _check_learning_overrides(name: str, area: dict[str, Any], config: dict[str, Any], schema: dict[str, Any]) -> None:
    """An area's overrides are checked as the section they complete, keys named under the area."""
    for section in AREA_SECTIONS:
        if section not in area:
            continue
        merged = area_section(config, area, section)
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema["properties"][section]).iter_errors(merged))
        if error is not None:
            path = ["areas", name, section, *error.absolute_path]
            if error.validator == "additionalProperties":
                extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
                raise ConfigError(f"unknown key {', '.join(_key_path([*path, e]) for e in extra)} "
                                  f"(expected one of: {', '.join(sorted(error.schema.get('properties', {})))})")
            raise ConfigError(f"{_key_path(path)}: {error.message}")
    patches = area_section(config, area, "patches")
    for step in ("pretrain", "train"):
        size = area_section(config, area, step)["patch_size"]
        if size > patches["size"]:
            raise ConfigError(f"areas.{name}.{step}.patch_size: {size} is larger than the stored patches "
                              f"(patches.size = {patches['size']})")


def _check_shared_pretraining(name: str, area: dict[str, Any], config: dict[str, Any]) -> None:
    others = shared_pretraining_areas(config, name)
    for other in others:
        if other not in config["areas"]:
            raise ConfigError(f"areas.{name}.pretrain.with_areas: no area named {other!r} "
                              f"(areas: {', '.join(config['areas'])})")
    if others and area_section(config, area, "pretrain")["from"]:
        raise ConfigError(f"areas.{name}.pretrain: from and with_areas are both set, but an area that starts "
                          "from another checkpoint runs no pretraining of its own")


def shared_pretraining_areas(config: dict[str, Any], area: str) -> list[str]:
    """The other areas whose pretraining patches join `area`'s pretraining (`pretrain.with_areas`)."""
    others = area_section(config, config["areas"][area], "pretrain")["with_areas"]
    return [other for other in dict.fromkeys(others) if other != area]


def _parse_date(value: str, key: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{key}: {value!r} is not a date (expected YYYY-MM-DD)") from None


def load_config(path: str) -> dict[str, Any]:
    """Read a YAML config file and validate it."""
    try:
        with open(path) as f:
            config = yaml.safe_load(f) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return validate_config(config)


# `snakemake ablation`: the full method and the method without each of its parts or fixes, as
# overrides of the model, pretrain and train settings (variants that change pretraining or the
# model are pretrained again); each variant is trained with every seed of `ablation.seeds`
ABLATION_VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "full": {},
    "consensus_only": {"train": {"similarity_weight": 0.0, "aggregation_weight": 0.0, "use_pretrained": False}},
    "plus_similarity": {"train": {"aggregation_weight": 0.0, "use_pretrained": False}},
    "plus_aggregation": {"train": {"use_pretrained": False}},
    "local_similarity": {"train": {"similarity_pairs": 0}},
    "threshold_half": {"train": {"calibration": "none"}},
    "prior_calibration": {"train": {"calibration": "prior"}},
    "gap_filled_targets": {"pretrain": {"observed_only": False}},
    "day_of_year_dates": {"model": {"date_encoding": "day_of_year"}},
    "attention_not_pretrained": {"model": {"attention_in_reconstruction": False}},
}
OWN_PRETRAINING = [name for name, parts in ABLATION_VARIANTS.items() if {"model", "pretrain"} & set(parts)]


def ablation_variants(config: dict[str, Any]) -> list[str]:
    """The variants `snakemake ablation` trains: `ablation.variants`, else all of them."""
    return list(config["ablation"].get("variants") or ABLATION_VARIANTS)


def ablation_areas(config: dict[str, Any]) -> list[str]:
    """Areas of `snakemake ablation`: `ablation.areas`, else the run's areas; those with a reference."""
    names = config["ablation"].get("areas") or selected_areas(config)
    return [name for name in names if config["areas"][name].get("reference")]


def _grid(a: dict[str, Any]) -> dict[str, Any]:
    return {k: a[k] for k in ("aoi", "crs", "resolution", "tile_size")}


def _patch_settings(patches: dict[str, Any], per_tile: str) -> dict[str, Any]:
    return {"size": patches["size"], "per_tile": patches[per_tile], "seed": patches["seed"]}


def _without(section: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in section.items() if k not in keys}


def _without_gpus(section: dict[str, Any]) -> dict[str, Any]:
    # the GPU request is the scheduler's business, not the result's: it never reruns a step
    return _without(section, "gpus")


def _network_prediction(predict: dict[str, Any]) -> dict[str, Any]:
    # what the network's prediction depends on: not which method makes the map (the mosaic's inputs
    # say that), nor the ensemble's weight (the `ensemble` step's)
    return _without(predict, "gpus", "method", "network_weight")


# step -> what it depends on, from the validated config (c) and its area (a); the shapes are the
# dataclasses of `cropmap.settings.STEP_SETTINGS`
_STEP_BUILDERS: dict[str, Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]] = {
    "demo": lambda c, a: {"grid": _grid(a), "season": a["season"], "demo": a.get("demo", {}),
                          "bands": c["sits"]["bands"], "scl_band": c["sits"]["scl_band"]},
    "search": lambda c, a: {"grid": _grid(a), "season": a["season"], "stac": a["stac"]},
    "sits": lambda c, a: {"grid": _grid(a), "season": a["season"], "sign": a["stac"]["sign"], **c["sits"],
                          **({"interval_days": a["interval_days"]} if "interval_days" in a else {})},
    "labels": lambda c, a: {"grid": _grid(a), "block_tiles": a["block_tiles"], "products": a["glc"],
                            "consensus": c["consensus"]},
    "pretrain_patches": lambda c, a: _patch_settings(area_section(c, a, "patches"), "pretrain_per_tile"),
    "train_patches": lambda c, a: {**_patch_settings(area_section(c, a, "patches"), "train_per_tile"),
                                   **{k: area_section(c, a, "patches")[k] for k in ("follow_labelled_share", "crop_share")},
                                   "own_holdout": a["labels"]["holdout"] if a.get("labels") else 0.0},
    # `from` names the train job's input, not a pretraining setting
    "pretrain": lambda c, a: {"model": {**area_section(c, a, "model"), "series_skip": False, "series_hidden": 0},
                              **_without(area_section(c, a, "pretrain"), "from", "with_areas"), "season_start": a["season"]["start"],
                              **_other_seasons(c, a)},
    "train": lambda c, a: {"model": area_section(c, a, "model"), **_without_gpus(area_section(c, a, "train")),
                           "season_start": a["season"]["start"],
                           "own_label_weight": float(a["labels"]["weight"]) if a.get("labels") else 1.0},
    "predict": lambda c, a: {"grid": _grid(a), "block_tiles": a["block_tiles"], "season_start": a["season"]["start"],
                             **_network_prediction(c["predict"])},
    "mosaic": lambda c, a: {"grid": _grid(a), **_network_prediction(c["predict"])},
    "label_quality": lambda c, a: {"grid": _grid(a), "reference": a.get("reference"), "products": list(a["glc"])},
    "assess": lambda c, a: {"grid": _grid(a), "reference": a.get("reference"), "products": list(a["glc"]),
                            **_without(c["assess"], "sample", "labelled_sample", "suggest")},
    "sample": lambda c, a: c["assess"]["sample"],
    "suggest": lambda c, a: c["assess"]["suggest"],
    "area": lambda c, a: {"reference": a.get("reference"), "labelled_sample": c["assess"].get("labelled_sample")},
    "random_forest": lambda c, a: {"seed": area_section(c, a, "train")["seed"], **c["forest"]},
    "random_forest_predict": lambda c, a: {"grid": _grid(a), "block_tiles": a["block_tiles"]},
    "ensemble": lambda c, a: {"grid": _grid(a), "block_tiles": a["block_tiles"],
                              "network_weight": c["predict"]["network_weight"]},
    "stac_item": lambda c, a: {"season": a["season"]},
}


def step_settings(config: dict[str, Any], area: str, step: str) -> dict[str, Any]:
    """The settings one step depends on, and nothing else, as plain values; an ablation's steps are
    `pretrain:<variant>`, `train:<variant>:<seed>` and `random_forest:<seed>`."""
    if ":" in step:
        step, variant, *seed = step.split(":")
        if step == "random_forest":
            return {**step_settings(config, area, "random_forest"), "seed": int(variant)}
        parts = ABLATION_VARIANTS[variant]
        settings = step_settings(config, area, step)
        settings = {**settings, **parts.get(step, {}), "model": {**settings["model"], **parts.get("model", {})}}
        return {**settings, "seed": int(seed[0])} if seed else settings
    if step not in _STEP_BUILDERS:
        raise ValueError(f"unknown step {step!r}")
    return _STEP_BUILDERS[step](config, config["areas"][area])


def _other_seasons(config: dict[str, Any], area: dict[str, Any]) -> dict[str, Any]:
    """The pretraining's `other_seasons` (`pretrain.with_areas`); no key when there are none, so
    that the settings of an area pretrained alone stay what they were."""
    named = area_section(config, area, "pretrain")["with_areas"]
    others = [other for other in dict.fromkeys(named) if config["areas"][other] is not area]
    if not others:
        return {}
    from cropmap.grid import blocks_for_area

    return {"other_seasons": [{"area": other, "season_start": config["areas"][other]["season"]["start"],
                               "stores": len(blocks_for_area(grid_settings(config, other), config["areas"][other]["block_tiles"]))}
                              for other in others]}


def grid_settings(config: dict[str, Any], area: str):
    """The area's tiling as `cropmap.settings.GridSettings`."""
    from cropmap.settings import GridSettings

    return GridSettings(**_grid(config["areas"][area]))


def typed_settings(config: dict[str, Any], area: str, step: str):
    """`step_settings` as the step's dataclass of `cropmap.settings`."""
    from cropmap.settings import STEP_SETTINGS, from_dict

    return from_dict(STEP_SETTINGS[step.split(":")[0]], step_settings(config, area, step), where=f"{step} settings")


def settings_json(config: dict[str, Any], area: str, step: str) -> str:
    """`step_settings` as canonical JSON (stable across runs, so reruns trigger only on change)."""
    return json.dumps(step_settings(config, area, step), sort_keys=True, separators=(",", ":"))
