import pytest
import yaml

from cropmap.config import load_config, settings_json, step_settings, validate_config
from cropmap.errors import ConfigError

from conftest import REPO


def test_default_config_is_valid_and_filled():
    config = load_config(REPO / "config.yaml")
    assert config["sits"]["bands"][:3] == ["B02", "B03", "B04"]
    assert config["areas"]["demo"]["crs"] == "auto"
    assert config["train"]["similarity_weight"] > 0


def test_minimal_config_gets_defaults(minimal_config):
    config = validate_config(minimal_config)
    assert config["areas"]["demo"]["tile_size"] == 512
    assert config["areas"]["demo"]["resolution"] == 10
    assert config["sits"]["interval_days"] == 10
    assert config["predict"]["window"] == 80


def _error(config) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_typo_in_key_is_named(minimal_config):
    minimal_config["areas"]["demo"]["tile_sise"] = 256
    message = _error(minimal_config)
    assert "areas.demo.tile_sise" in message and "tile_size" in message


def test_string_for_number_is_named(minimal_config):
    minimal_config["areas"]["demo"]["tile_size"] = "big"
    assert _error(minimal_config).startswith("areas.demo.tile_size: expected integer")


def test_unknown_product_is_named(minimal_config):
    minimal_config["areas"]["demo"]["glc"]["a"]["type"] = "worldcovr"
    message = _error(minimal_config)
    assert "areas.demo.glc.a.type" in message and "esa-worldcover" in message


def test_product_without_legend(minimal_config):
    minimal_config["areas"]["demo"]["glc"]["a"] = {"path": "x.tif"}
    assert "areas.demo.glc.a" in _error(minimal_config)


def test_empty_aoi(minimal_config):
    minimal_config["areas"]["demo"]["aoi"]["bbox"] = [10, 45, 10, 45]
    assert "areas.demo.aoi.bbox" in _error(minimal_config)


def test_end_before_start(minimal_config):
    minimal_config["areas"]["demo"]["season"]["end"] = "2023-01-01"
    assert "areas.demo.season.end" in _error(minimal_config)


def test_unknown_crs(minimal_config):
    minimal_config["areas"]["demo"]["crs"] = "EPSG:999999"
    assert "areas.demo.crs" in _error(minimal_config)


def test_overlap_too_large(minimal_config):
    minimal_config["predict"] = {"window": 32, "overlap": 16}  # stride 16 divides 512
    assert "predict.overlap" in _error(minimal_config)


def test_step_settings_are_scoped():
    """Each step sees only what it depends on, so params-based reruns are precise."""
    config = load_config(REPO / "config.yaml")
    before = {step: settings_json(config, "demo", step) for step in
              ("demo", "search", "sits", "labels", "label_quality", "pretrain", "train", "predict", "mosaic", "assess")}
    config["sits"]["interval_days"] = 5
    config["assess"]["table_decimals"] = 4
    after = {step: settings_json(config, "demo", step) for step in before}
    changed = {step for step in before if before[step] != after[step]}
    assert changed == {"sits", "assess"}
    assert "interval_days" in step_settings(config, "demo", "sits")


def test_the_map_making_method_reruns_neither_the_network_nor_the_forest():
    config = load_config(REPO / "config.yaml")
    steps = ("predict", "mosaic", "random_forest", "random_forest_predict", "ensemble", "assess")
    before = {step: settings_json(config, "demo", step) for step in steps}
    config["predict"]["method"] = "ensemble"  # the mosaic's inputs change, no step's settings
    assert {s for s in steps if settings_json(config, "demo", s) != before[s]} == set()
    config["predict"]["network_weight"] = 0.7
    assert {s for s in steps if settings_json(config, "demo", s) != before[s]} == {"ensemble"}
    config["forest"]["trees"] = 50
    assert {s for s in steps if settings_json(config, "demo", s) != before[s]} == {"ensemble", "random_forest"}


def test_sampling_settings_reach_only_their_patches():
    config = load_config(REPO / "config.yaml")
    config["areas"]["demo"].pop("patches", None)  # the demo's own sampling would hide the top level's
    steps = ("sits", "pretrain_patches", "train_patches", "pretrain", "train")
    before = {step: settings_json(config, "demo", step) for step in steps}
    config["patches"]["crop_share"] = 0.3
    assert {s for s in steps if settings_json(config, "demo", s) != before[s]} == {"train_patches"}
    config["patches"]["size"] = 48
    assert {s for s in steps if settings_json(config, "demo", s) != before[s]} == {"pretrain_patches", "train_patches"}


def test_training_windows_must_fit_the_stored_patches(minimal_config):
    minimal_config["patches"] = {"size": 24}
    assert _error(minimal_config).startswith("pretrain.patch_size: 32 is larger than the stored patches")


def test_a_shared_pretraining_names_known_areas_and_changes_only_its_own_settings():
    """Issue 23: `pretrain.with_areas` adds other areas' patches (and season starts) to one area's
    pretraining; an area pretrained alone keeps the settings it had, so nothing of it reruns."""
    config = load_config(REPO / "config.yaml")
    alone = {area: settings_json(config, area, "pretrain") for area in ("demo", "demo_hard")}
    assert "other_seasons" not in alone["demo_hard"]
    config["areas"]["demo_hard"]["pretrain"] = {**config["areas"]["demo_hard"]["pretrain"], "with_areas": ["demo", "demo_hard"]}
    validate_config(config)
    assert step_settings(config, "demo_hard", "pretrain")["other_seasons"] == [
        {"area": "demo", "season_start": "2023-03-01", "stores": 1}]
    assert settings_json(config, "demo", "pretrain") == alone["demo"]
    for step in ("train", "pretrain_patches", "train_patches", "predict"):
        assert "with_areas" not in settings_json(config, "demo_hard", step)
    config["areas"]["demo_hard"]["pretrain"]["with_areas"] = ["demo_2021"]
    with pytest.raises(ConfigError, match=r"areas.demo_hard.pretrain.with_areas: no area named 'demo_2021'"):
        validate_config(config)
    config["areas"]["demo_hard"]["pretrain"] = {"with_areas": ["demo"], "from": "results/demo/model/pretrained.pt"}
    with pytest.raises(ConfigError, match="from and with_areas are both set"):
        validate_config(config)


def test_custom_product_legend_in_config(minimal_config):
    minimal_config["areas"]["demo"]["glc"]["mine"] = {"path": "m.tif", "crop_classes": [3, 4], "nodata": 0}
    config = validate_config(minimal_config)
    assert config["areas"]["demo"]["glc"]["mine"]["crop_classes"] == [3, 4]


def test_yaml_file_errors(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("areas: [unclosed")
    with pytest.raises(ConfigError):
        load_config(bad)
    bad.write_text(yaml.safe_dump({"areas": {}}))
    with pytest.raises(ConfigError, match="areas"):
        load_config(bad)


def test_absolute_or_escaping_paths_need_permission(minimal_config):
    minimal_config["areas"]["demo"]["glc"]["a"]["path"] = "/data/wc.tif"
    assert "allow_absolute_paths" in _error(minimal_config)
    minimal_config["areas"]["demo"]["glc"]["a"]["path"] = "../elsewhere/wc.tif"
    assert "areas.demo.glc.a.path" in _error(minimal_config)
    minimal_config["allow_absolute_paths"] = True
    validate_config(minimal_config)


def test_tile_size_must_be_a_multiple_of_the_window_stride(minimal_config):
    minimal_config["areas"]["demo"]["tile_size"] = 500
    message = _error(minimal_config)
    assert message.startswith("areas.demo.tile_size") and "stride" in message


def test_aoi_file_that_is_not_a_polygon(minimal_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "aoi.geojson").write_text('{"type": "Point", "coordinates": [-96.7, 39.3]}')
    minimal_config["areas"]["demo"]["aoi"] = {"file": "aoi.geojson"}
    message = _error(minimal_config)
    assert message.startswith("areas.demo.aoi") and "polygon" in message


def test_an_area_overrides_the_learning_settings_for_itself_alone(minimal_config):
    """The demo keeps its small budget while another area inherits the top-level settings."""
    import copy

    minimal_config["areas"]["other"] = copy.deepcopy(minimal_config["areas"]["demo"])
    minimal_config["areas"]["demo"].update(train={"steps": 150}, model={"width": 16}, patches={"train_per_tile": 8})
    config = validate_config(minimal_config)
    assert step_settings(config, "demo", "train")["steps"] == 150
    assert step_settings(config, "demo", "train")["model"]["width"] == 16
    assert step_settings(config, "demo", "pretrain")["model"]["width"] == 16
    assert step_settings(config, "demo", "train_patches")["per_tile"] == 8
    assert step_settings(config, "other", "train")["steps"] == config["train"]["steps"]
    assert step_settings(config, "other", "train")["model"] == config["model"]


@pytest.mark.parametrize("override, message", [
    ({"train": {"stepz": 1}}, "unknown key areas.demo.train.stepz (expected one of:"),
    ({"model": {"width": "wide"}}, "areas.demo.model.width: 'wide' is not of type 'integer'"),
    ({"train": {"patch_size": 64}}, "areas.demo.train.patch_size: 64 is larger than the stored patches"),
])
def test_an_areas_overrides_are_checked_as_the_section_they_complete(minimal_config, override, message):
    minimal_config["areas"]["demo"].update(override)
    assert _error(minimal_config).startswith(message)
