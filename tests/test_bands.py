"""Band names resolved on real STAC metadata of the public catalogs (../shared/fixtures/stac)."""

import json

import pystac
import pytest

from cropmap.acquisition.bands import resolve_bands
from cropmap.errors import DataError
from cropmap.acquisition.sits import reflectance_scaling

from conftest import shared_fixture

BANDS = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12", "SCL"]


def _item(*parts) -> pystac.Item:
    data = json.loads(shared_fixture("stac", *parts).read_text())
    if data.get("type") == "FeatureCollection":
        data = next(f for f in data["features"] if f.get("collection") == "sentinel-2-l2a")
    return pystac.Item.from_dict(data)


def test_earth_search_v1_common_names():
    item = _item("earth-search-v1", "search_s2l2a_landsat_2023-10-08.json")
    keys = resolve_bands(item, BANDS)
    assert keys == {"B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1", "B06": "rededge2",
                    "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B11": "swir16", "B12": "swir22", "SCL": "scl"}
    # Earth Search v1 publishes the baseline-04.00 offset in raster:bands
    assert reflectance_scaling(item, keys["B04"]) == pytest.approx((1e-4, -0.1))


def test_planetary_computer_band_ids():
    item = _item("planetary-computer", "S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531_raster_ext.json")
    assert resolve_bands(item, BANDS) == {b: b for b in BANDS}
    # processing baseline 02.12: no offset
    assert reflectance_scaling(item, "B04") == pytest.approx((1e-4, 0.0))


def test_earth_search_v0_band_ids():
    item = _item("earth-search-v0", "S2A_28QCH_20200714_0_L2A.json")
    assert resolve_bands(item, BANDS) == {b: b for b in BANDS}


def test_missing_band_is_named():
    item = _item("planetary-computer", "S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531_raster_ext.json")
    with pytest.raises(DataError, match="no asset for band 'B13'"):
        resolve_bands(item, ["B13"])
