"""Real-label demo areas: fields carrying real parcels' series (WorldCereal extractions)."""

import json
import datetime as dt

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings, strategies as st

from cropmap.config import typed_settings
from cropmap.demo.area import make_demo
from cropmap.demo.series import GAIN_SD, PRODUCT_CONFUSION, SERIES_CLASSES, SHIFT_DAYS, _product_calls, vary_series
from cropmap.errors import ConfigError
from cropmap.demo.extractions import BANDS, EXTRACTIONS, MISSING, load_extraction
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


def _config(tmp, series="worldcereal-corsica", season=None, **demo):
    from conftest import one_tile_demo_config

    return one_tile_demo_config(
        tmp, Tile(103, 917, "EPSG:32632", 10.0, TILE),
        season=season or {"start": "2021-09-01", "end": "2022-08-26"},
        demo={"seed": 3, "series": series, "crop_share": 0.5, **demo}, sits={"interval_days": 30})


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), slope=st.floats(0.002, 0.05), steps=st.integers(4, 36))
def test_a_varied_series_is_its_source_shifted_by_at_most_two_weeks_and_scaled_by_a_few_percent(seed, slope, steps):
    # a ramp in time, v(t) = a + b t: a field's series is g * v(t - s), so between two inner dates
    # (no clipping at the ends, |s| < 1 date) the step gives its gain g and a value its shift s
    a, days = 0.1, 30.0
    ramp = (a + slope * np.arange(steps))[None, :, None] * np.ones((64, 1, 3))
    out = vary_series(ramp, np.zeros((64, steps), bool), np.random.default_rng(seed), days_per_step=days)
    gain = (out[:, 2] - out[:, 1]) / slope
    shift_days = (1 - (out[:, 1] / gain - a) / slope) * days
    assert np.all(np.abs(gain - 1) < 6 * GAIN_SD)
    assert np.all(np.abs(shift_days) <= SHIFT_DAYS + 1e-2)
    assert np.ptp(shift_days) > SHIFT_DAYS  # shifts spread over the range, not all alike
    assert len(np.unique(out.reshape(64, -1), axis=0)) == 64  # no two fields alike


def test_fields_of_one_source_parcel_carry_the_same_series_only_when_verbatim():
    from cropmap.demo.series import _parcel_series

    series = load_extraction("worldcereal-east-africa")
    sample = np.repeat(np.flatnonzero(series.landcover == "trees")[:3], 5)  # 3 parcels, 5 fields each
    months = list(range(12))
    verbatim = _parcel_series(series, sample, months, "verbatim", np.random.default_rng(0))
    varied = _parcel_series(series, sample, months, "varied", np.random.default_rng(0))
    rows = lambda x: len(np.unique(np.nan_to_num(x, nan=-1).reshape(len(x), -1), axis=0))
    assert rows(verbatim) == 3 and rows(varied) == 15
    # still the source's series: within a few per cent where both are observed
    both = np.isfinite(verbatim) & np.isfinite(varied)
    assert np.median(np.abs(varied[both] / verbatim[both] - 1)) < 0.1


def test_a_varied_series_takes_its_own_clouds_and_fills_its_sources_gaps():
    values = np.full((2, 6, 2), 0.2, np.float32)
    values[0, 2] = np.nan  # the source's cloud
    clouds = np.zeros((2, 6), bool)
    clouds[1, 4] = True
    out = vary_series(values, clouds, np.random.default_rng(0))
    assert np.isnan(out[1, 4]).all() and np.isfinite(np.delete(out[1], 4, axis=0)).all()
    assert np.isfinite(out[0]).all()  # the source's gap is filled, the field's own sky is clear
    assert np.allclose(out[0, 2], out[0, 1], rtol=1e-6)  # filled from its neighbours (here equal)


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


@pytest.mark.parametrize("copies", ["varied", "verbatim"])
def test_a_series_demo_area_says_how_often_each_source_series_is_used(tmp_path, copies):
    config = _config(tmp_path, series="worldcereal-east-africa", season={"start": "2016-12-01", "end": "2017-11-25"},
                     series_copies=copies)
    make_demo(settings=typed_settings(config, "demo", "demo"), out_dir=tmp_path)
    sources = json.loads((tmp_path / "series_sources.json").read_text())
    assert sources["copies"] == copies
    rows = sources["classes"]
    assert sum(row["fields"] for row in rows.values()) > 10
    for row in rows.values():
        assert row["sources_used"] <= min(row["fields"], row["sources_available"])
        if copies == "varied":  # the pool is used evenly: no source serves more than its share, rounded up
            assert row["fields_per_source_max"] <= np.ceil(row["fields"] / row["sources_available"])


def test_a_cloud_bank_hides_a_quarter_of_the_tile_on_most_scenes(tmp_path):
    config = _config(tmp_path, cloud_bank=0.75)
    make_demo(settings=typed_settings(config, "demo", "demo"), out_dir=tmp_path)
    items = sorted((tmp_path / "stac" / "sentinel-2-l2a").glob("*/*.json"))
    banked = []
    for item in items:
        with rasterio.open(item.parent / "SCL.tif") as src:
            scl = src.read(1)
        h, w = scl.shape
        banked.append(bool((scl[h // 4:3 * h // 4, w // 4:3 * w // 4] == 9).all()))
    assert sum(banked) == 9 and len(banked) == 12  # 75 % of 12 monthly scenes
    assert np.mean(scl[: h // 4] == 9) < 0.5  # outside the bank only the fields' own clouds
