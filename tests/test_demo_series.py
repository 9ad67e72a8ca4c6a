"""Real-label demo areas: fields carrying real parcels' series (WorldCereal extractions)."""

import json
import datetime as dt

import numpy as np
import pytest
import rasterio

from cropmap.config import typed_settings
from cropmap.demo import make_demo
from cropmap.demo_series import PRODUCT_CONFUSION, SERIES_CLASSES, _product_calls
from cropmap.errors import ConfigError
from cropmap.extractions import BANDS, EXTRACTIONS, MISSING, load_extraction
from cropmap.grid import Tile

TILE = 128


def test_the_shipped_extractions_hold_labelled_monthly_series():
    east_africa, corsica = load_extraction("worldcereal-east-africa"), load_extraction("worldcereal-corsica")
    assert east_africa.reflectance.shape == (500, 12, len(BANDS))
    assert east_africa.months[0] == dt.date(2016, 12, 1) and east_africa.months[-1] == dt.date(2017, 11, 1)
    assert corsica.reflectance.shape[1:] == (17, len(BANDS)) and corsica.months[0] == dt.date(2021, 9, 1)
    assert int(east_africa.is_crop.sum()) == 471 and int(corsica.is_crop.sum()) == 25
    assert "ignore" not in set(corsica.landcover)  # samples whose code says nothing of land cover are left out
    observed = corsica.reflectance[..., BANDS.index("B08")] != MISSING
    b8a, b08 = corsica.reflectance[..., BANDS.index("B8A")], corsica.reflectance[..., BANDS.index("B08")]
    assert np.array_equal(b8a[observed], b08[observed])  # Corsica has no B8A: it is B08's
    values = east_africa.reflectance[east_africa.reflectance != MISSING]
    assert 100 < np.median(values) < 5000  # reflectance x 10000
    with pytest.raises(ConfigError, match="unknown extraction"):
        load_extraction("worldcereal-mars")
    assert set(EXTRACTIONS) == {"worldcereal-east-africa", "worldcereal-corsica"}


def test_product_errors_follow_the_real_class_and_go_together():
    classes = np.array(["temporary_grasses"] * 4000 + ["trees"] * 4000 + ["temporary_crops"] * 4000)
    calls = _product_calls(classes, np.random.default_rng(0))
    grass, trees = classes == "temporary_grasses", classes == "trees"
    assert np.mean(calls["worldcover"][grass]) > np.mean(calls["worldcover"][trees]) + 0.1
    # correlated: where one product calls leys crop, the others mostly do too
    both = np.mean(calls["esri"][grass & calls["worldcover"]])
    assert both > 2 * np.mean(calls["esri"][grass])
    assert np.mean(calls["glad"][classes == "temporary_crops"]) > 1 - 2 * PRODUCT_CONFUSION["temporary_crops"]


def _config(tmp, series="worldcereal-corsica", season=None):
    from conftest import one_tile_demo_config

    return one_tile_demo_config(
        tmp, Tile(103, 917, "EPSG:32632", 10.0, TILE),
        season=season or {"start": "2021-09-01", "end": "2022-08-26"},
        demo={"seed": 3, "series": series, "crop_share": 0.5}, sits={"interval_days": 30})


def test_a_series_demo_area_carries_the_parcels_series(tmp_path):
    config = _config(tmp_path)
    make_demo(settings=typed_settings(config, "demo", "demo"), out_dir=tmp_path)
    corsica = load_extraction("worldcereal-corsica")
    catalog = json.loads((tmp_path / "stac" / "catalog.json").read_text())
    assert catalog["id"] == "cropmap-demo"
    items = sorted((tmp_path / "stac" / "sentinel-2-l2a").glob("*/*.json"))
    assert len(items) == 12  # one scene a month
    with rasterio.open(tmp_path / "reference" / "cropland_truth.tif") as src:
        truth = src.read(1)
    with rasterio.open(tmp_path / "reference" / "landcover_truth.tif") as src:
        landcover = src.read(1)
    assert set(np.unique(landcover)) <= set(SERIES_CLASSES)
    assert np.array_equal(truth == 1, landcover == 1)
    assert 0.2 < truth.mean() < 0.8
    # the first scene's red band: every pixel near a value of the extraction's first month
    first = next(p for p in items if "20210915" in p.name)
    with rasterio.open(first.parent / "B04.tif") as src:
        red = (src.read(1).astype(float) - 1000) / 10000
    month0 = corsica.reflectance[:, 0, BANDS.index("B04")]
    candidates = np.unique(month0[month0 != MISSING]) / 10000
    nearest = np.abs(red.ravel()[:, None] - candidates[None]).min(axis=1)
    with rasterio.open(first.parent / "SCL.tif") as src:
        clear = np.kron(src.read(1) == 4, np.ones((2, 2), bool)).ravel()
    assert clear.mean() > 0.9
    assert np.median(nearest[clear]) < 0.004
    for name in ("worldcover.tif", "esri_lulc.tif", "glad_cropland.tif"):
        assert (tmp_path / "glc" / name).exists()


def test_a_season_outside_the_extraction_is_a_config_error(tmp_path):
    config = _config(tmp_path, season={"start": "2019-01-01", "end": "2019-12-01"})
    with pytest.raises(ConfigError, match="no month of the extraction"):
        make_demo(settings=typed_settings(config, "demo", "demo"), out_dir=tmp_path)
