import dataclasses
import json

import pytest

from cropmap.config import _STEP_BUILDERS, ABLATION_VARIANTS, load_config, settings_json, step_settings, typed_settings
from cropmap.errors import ConfigError
from cropmap.settings import STEP_SETTINGS, GridSettings, SitsSettings, parse_settings, to_dict


@pytest.mark.parametrize("area", ["demo", "demo_hard"])
def test_every_step_of_the_shipped_config_reads_into_its_dataclass(area):
    config = load_config("config.yaml")
    assert set(STEP_SETTINGS) == set(_STEP_BUILDERS)
    for step, cls in STEP_SETTINGS.items():
        typed = parse_settings(step, settings_json(config, area, step))
        assert isinstance(typed, cls)
        # what the rule passes and what the step reads are the same values (a field the rule may
        # leave out, such as pretraining's other_seasons, read as its default)
        defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
        assert to_dict(typed) == json.loads(json.dumps({**defaults, **step_settings(config, area, step)}))
    train = typed_settings(config, area, "train:local_similarity:2")
    assert train.similarity_pairs == 0 and train.seed == 2 and isinstance(train.model.width, int)
    assert set(ABLATION_VARIANTS) >= {"full", "local_similarity"}


def test_a_missing_or_unknown_key_is_a_config_error_naming_it():
    config = load_config("config.yaml")
    values = step_settings(config, "demo", "sits")
    with pytest.raises(ConfigError, match=r"missing key\(s\) min_scenes"):
        parse_settings("sits", json.dumps({k: v for k, v in values.items() if k != "min_scenes"}))
    with pytest.raises(ConfigError, match=r"sits settings\.grid .*unknown key\(s\) tile_sise"):
        parse_settings("sits", json.dumps({**values, "grid": {**values["grid"], "tile_sise": 3}}))
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_settings("sits", "{grid")


def test_settings_are_frozen_and_nested_settings_are_typed():
    config = load_config("config.yaml")
    sits = typed_settings(config, "demo", "sits")
    assert isinstance(sits, SitsSettings) and isinstance(sits.grid, GridSettings)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sits.halo_px = 3
    assert typed_settings(config, "demo", "area").reference.crop_classes == [1]
