"""Typed settings of each step.

`cropmap.config.step_settings` picks from the validated config what one step depends on, as
JSON for Snakemake's params; `parse_settings` turns that JSON back into the step's dataclass.
The dataclasses have no defaults of their own: the schema fills in every default, and a key that
is missing or unknown here is a `ConfigError`, so renaming a key means editing the schema and one
field.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any

from cropmap.errors import ConfigError

__all__ = ["AreaSettings", "AssessSettings", "BlockSettings", "ConsensusSettings", "DemoAreaSettings",
           "DemoSettings", "EnsembleSettings", "GridSettings", "LabelQualitySettings", "LabelsSettings", "ModelSettings",
           "MosaicSettings", "PredictSettings", "PretrainPatchSettings", "PretrainSettings",
           "RandomForestSettings", "ReferenceSettings", "SampleSettings", "SearchSettings", "SeasonSettings",
           "SitsSettings", "StacItemSettings", "STEP_SETTINGS", "TrainPatchSettings", "TrainSettings",
           "from_dict", "parse_settings", "to_dict"]

_settings = dataclass(frozen=True, kw_only=True)


@_settings
class GridSettings:
    """The area's tiling: `aoi` ({"bbox": [W, S, E, N]} in lon/lat degrees, or {"file": path}),
    `crs` of the tiles ("auto": the UTM zone of the AOI's centre), pixel size in metres and tile edge in pixels."""
    aoi: Mapping[str, Any]
    crs: str
    resolution: float
    tile_size: int


@_settings
class SeasonSettings:
    """First and last day of the season (ISO dates, inclusive)."""
    start: str
    end: str


@_settings
class ReferenceSettings:
    """The independent reference: a raster, a CSV of points or a vector file (see the schema)."""
    path: str
    crop_classes: list[int]
    nodata: int | None
    class_column: str
    crs: str


@_settings
class ConsensusSettings:
    """How the products' crop / non-crop votes become labels (`cropmap.labels.consensus`)."""
    rule: str
    min_voters: int
    min_agreement: int
    weights: Mapping[str, float]
    weighted_threshold: float
    erode_px: int
    min_patch_px: int


@_settings
class ModelSettings:
    """The network's size and options (`cropmap.model.ModelConfig` without the band count)."""
    width: int
    heads: int
    temporal_layers: int
    attention_pool: int
    date_encoding: str
    attention_in_reconstruction: bool
    series_skip: bool
    series_hidden: int


@_settings
class DemoSettings:
    """Parameters of a demo area (`cropmap.demo`)."""
    seed: int
    revisit_days: int
    crop_share: float
    data_coverage: float
    product_errors: str
    series: str
    series_copies: str
    cloud_bank: float


@_settings
class DemoAreaSettings:
    grid: GridSettings
    season: SeasonSettings
    demo: DemoSettings
    bands: list[str]
    scl_band: str


@_settings
class SearchSettings:
    grid: GridSettings
    season: SeasonSettings
    # a STAC source as the schema describes it (an API or a static catalog, with its filters)
    stac: Mapping[str, Any]


@_settings
class SitsSettings:
    """One tile's cube: bands, cloud masking, composite interval (days), halo (px) and read retries."""
    grid: GridSettings
    season: SeasonSettings
    sign: str
    bands: list[str]
    scl_band: str
    masked_scl_classes: list[int]
    cloud_dilation_px: int
    cloud_masker: str
    interval_days: int
    halo_px: int
    min_scenes: int
    read_retries: int
    read_backoff_s: float
    read_threads: int
    dask_scheduler: str


@_settings
class BlockSettings:
    """A block of `block_tiles` x `block_tiles` tiles of the area's grid."""
    grid: GridSettings
    block_tiles: int


@_settings
class LabelsSettings(BlockSettings):
    # the products' registry entries (source, legend), by name
    products: Mapping[str, Mapping[str, Any]]
    consensus: ConsensusSettings


@_settings
class PretrainPatchSettings:
    """Patch edge (px), patches per tile and the seed of their draw."""
    size: int
    per_tile: int
    seed: int


@_settings
class TrainPatchSettings(PretrainPatchSettings):
    follow_labelled_share: bool
    crop_share: float | None
    own_holdout: float  # share of one's own labels held out (`cropmap.labels.own_labels`)


@_settings
class PretrainSettings:
    model: ModelSettings
    season_start: str
    steps: int
    batch_size: int
    patch_size: int
    mask_ratio: float
    ndvi_threshold: float
    observed_only: bool
    learning_rate: float
    seed: int
    # other areas or seasons pretrained with this one (`pretrain.with_areas`), each as
    # {"area", "season_start", "stores"}: their stores follow the area's own, in this order
    other_seasons: tuple[dict[str, Any], ...] = ()


@_settings
class TrainSettings:
    model: ModelSettings
    season_start: str
    steps: int
    batch_size: int
    patch_size: int
    learning_rate: float
    similarity_weight: float
    similarity_sigma: float
    similarity_pairs: int
    calibration: str
    label_loss: str
    gce_q: float
    lr_schedule: str
    weight_averaging: float
    keep: str
    own_label_weight: float
    aggregation_weight: float
    validation_fraction: float
    eval_every: int
    patience: int
    use_pretrained: bool
    head_init: str
    time_shift_days: float = 0.0
    date_dropout: float = 0.0
    seed: int


@_settings
class MosaicSettings:
    """The predictions' window and overlap (px) are here so that a change reruns the mosaic."""
    grid: GridSettings
    window: int
    overlap: int
    batch_size: int
    threshold: float | None


@_settings
class PredictSettings(MosaicSettings):
    block_tiles: int
    season_start: str


@_settings
class LabelQualitySettings:
    grid: GridSettings
    reference: ReferenceSettings | None
    products: list[str]


@_settings
class AssessSettings(LabelQualitySettings):
    positive_label: str
    table_decimals: int


@_settings
class SuggestSettings:
    """Points suggested for labelling where the map is least certain: how many, their least distance
    apart (pixels), candidates kept per point while streaming the area, the seed of the tie-breaks."""
    points: int
    min_distance_px: float
    candidates_per_point: int
    seed: int


@_settings
class SampleSettings:
    """Stratified sample design (Olofsson et al. 2014): target standard error of overall accuracy,
    the users' accuracies expected for (non-crop, crop), the smallest stratum sample, the seed."""
    target_se: float
    expected_users_accuracy: list[float]
    min_per_stratum: int
    seed: int


@_settings
class AreaSettings:
    reference: ReferenceSettings | None
    labelled_sample: str | None


@_settings
class EnsembleSettings(BlockSettings):
    """The `ensemble` step: the network's weight in the mean crop probability (the forest's: 1 - it)."""
    network_weight: float


@_settings
class RandomForestSettings:
    seed: int
    trees: int
    max_samples: int


@_settings
class StacItemSettings:
    season: SeasonSettings


# step (as `cropmap.config.step_settings` names it) -> its settings
STEP_SETTINGS: dict[str, type] = {
    "demo": DemoAreaSettings, "search": SearchSettings, "sits": SitsSettings, "labels": LabelsSettings,
    "pretrain_patches": PretrainPatchSettings, "train_patches": TrainPatchSettings,
    "pretrain": PretrainSettings, "train": TrainSettings, "predict": PredictSettings, "mosaic": MosaicSettings,
    "label_quality": LabelQualitySettings, "assess": AssessSettings, "sample": SampleSettings, "suggest": SuggestSettings,
    "area": AreaSettings, "random_forest": RandomForestSettings, "random_forest_predict": BlockSettings,
    "ensemble": EnsembleSettings,
    "stac_item": StacItemSettings,
}


def _settings_class(hint) -> type | None:
    """The settings dataclass a field holds (also through `X | None`), else None."""
    if dataclasses.is_dataclass(hint):
        return hint
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return inner[0] if len(inner) == 1 and dataclasses.is_dataclass(inner[0]) else None
    return None


def from_dict(cls: type, values: Mapping[str, Any], *, where: str = "settings"):
    """`cls` from a mapping, nested settings included; a missing or unknown key is a `ConfigError`."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(values).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    required = {f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    unknown, missing = sorted(set(values) - names), sorted(required - set(values))
    if unknown or missing:
        raise ConfigError(f"{where} ({cls.__name__}): " + "; ".join(
            part for part in (unknown and f"unknown key(s) {', '.join(unknown)}",
                              missing and f"missing key(s) {', '.join(missing)}") if part))
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        nested = _settings_class(hints[name])
        kwargs[name] = from_dict(nested, value, where=f"{where}.{name}") if nested and value is not None else value
    return cls(**kwargs)


def to_dict(settings) -> dict[str, Any]:
    """Plain JSON-able values (for a checkpoint or a log)."""
    return json.loads(json.dumps(dataclasses.asdict(settings)))


def parse_settings(step: str, text: str):
    """The `--settings` JSON of `step` as its typed settings."""
    try:
        values = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"--settings is not valid JSON: {err}") from None
    return from_dict(STEP_SETTINGS[step], values, where=f"{step} settings")
