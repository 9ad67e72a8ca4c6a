"""The second cloud masker: ukis-csmask's CNN (real weights, shipped in its wheel) on demo scenes,
and a tile cube masked by SCL and the CNN together."""

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from cropmap.acquisition.cloudmask import csmask_bands, csmask_masked
from cropmap.config import typed_settings
from cropmap.demo.area import make_demo
from cropmap.errors import ConfigError, DataError
from cropmap.grid import Tile, tiles_for_area
from cropmap.acquisition.search import search_items
from cropmap.acquisition.sits import build_tile_cube, reflectance_scaling

pytest.importorskip("ukis_csmask")

TILE = 256
SIX_BANDS = ["B02", "B03", "B04", "B08", "B11", "B12"]


def _config(tmp: Path) -> dict:
    from conftest import one_tile_demo_config

    return one_tile_demo_config(
        tmp, Tile(272, 1700, "EPSG:32614", 10.0, TILE), season={"start": "2023-05-01", "end": "2023-06-29"},
        demo={"seed": 11, "revisit_days": 5}, sits={"interval_days": 20, "min_scenes": 1})


@pytest.fixture(scope="module")
def area(tmp_path_factory):
    root = tmp_path_factory.mktemp("cloudmask")
    config = _config(root)
    make_demo(settings=typed_settings(config, "demo", "demo"), out_dir=root)
    items = list(search_items(settings=typed_settings(config, "demo", "search")))
    return config, items


def _scene_at_20m(item):
    """(1, 6, y, x) reflectance of the six bands at 20 m (10 m bands averaged 2 x 2), and SCL."""
    bands = []
    for band in SIX_BANDS:
        with rasterio.open(item.assets[band].get_absolute_href()) as src:
            dn = src.read(1).astype(np.float32)
        if dn.shape[0] % 2 == 0 and src.res[0] < 15:
            dn = dn.reshape(dn.shape[0] // 2, 2, dn.shape[1] // 2, 2).mean(axis=(1, 3))
        scale, offset = reflectance_scaling(item, band)
        bands.append(np.where(dn > 0, dn * scale + offset, np.nan))
    with rasterio.open(item.assets["SCL"].get_absolute_href()) as src:
        scl = src.read(1)
    rows, cols = min(b.shape[0] for b in bands), min(b.shape[1] for b in bands)
    return np.stack([b[:rows, :cols] for b in bands])[None].astype(np.float32), scl[:rows, :cols]


def test_the_cnn_masks_the_clouds_scl_sees_and_little_of_what_it_calls_clear(area):
    _, items = area
    partly_cloudy = [item for item in items if 10 < item.properties["eo:cloud_cover"] < 60]
    assert partly_cloudy, "the demo season has no partly cloudy scene"
    cloud_hits = cloud_px = clear_hits = clear_px = 0
    for item in partly_cloudy:
        reflectance, scl = _scene_at_20m(item)
        masked = csmask_masked(reflectance)[0]
        cloud, clear = np.isin(scl, [8, 9]), np.isin(scl, [4, 5])
        cloud_hits, cloud_px = cloud_hits + masked[cloud].sum(), cloud_px + cloud.sum()
        clear_hits, clear_px = clear_hits + masked[clear].sum(), clear_px + clear.sum()
    cloud_rate, clear_rate = cloud_hits / cloud_px, clear_hits / clear_px
    # on real scenes the model is far better; on the demo's flat synthetic clouds it finds a part
    assert cloud_rate > 0.2, (cloud_rate, clear_rate)
    assert cloud_rate > 5 * clear_rate, (cloud_rate, clear_rate)



def test_the_reused_model_classifies_as_a_fresh_csmask_does(area):
    """csmask_masked reuses one CSmask's session (a private method of ukis-csmask): same classes."""
    from ukis_csmask.mask import CSmask

    _, items = area
    reflectance, _ = _scene_at_20m(next(item for item in items if 10 < item.properties["eo:cloud_cover"] < 60))
    image = np.moveaxis(np.nan_to_num(reflectance[0], nan=0.0), 0, -1).copy()
    fresh = CSmask(image, ["blue", "green", "red", "nir", "swir16", "swir22"], product_level="l2a",
                   invalid_buffer=0).csm[..., 0] > 0
    np.testing.assert_array_equal(csmask_masked(reflectance)[0], fresh)
    assert fresh.any()

def test_no_data_is_left_to_scl():
    reflectance = np.full((1, 6, 40, 40), np.nan, np.float32)
    assert not csmask_masked(reflectance).any()


def test_a_cube_masked_by_scl_and_the_cnn_keeps_fewer_observations(area):
    config, items = area
    settings = typed_settings(config, "demo", "sits")
    tile = tiles_for_area(settings.grid)[0]
    scl_only = build_tile_cube(items=items, tile=tile, settings=settings)
    both = build_tile_cube(items=items, tile=tile, settings=dataclasses.replace(settings, cloud_masker="ukis-csmask"))
    assert (both["clear_count"].values <= scl_only["clear_count"].values).all()
    assert both["clear_count"].values.sum() < scl_only["clear_count"].values.sum()


def test_the_cnn_needs_its_six_bands_and_its_package(area, monkeypatch):
    assert csmask_bands(["B02", "B03", "B04", "B05", "B08", "B11", "B12"]) == SIX_BANDS
    assert csmask_bands(["blue", "green", "red", "nir", "swir16", "swir22"])[0] == "blue"
    with pytest.raises(ConfigError, match="swir16, swir22"):
        csmask_bands(["B02", "B03", "B04", "B08"])
    config, items = area
    settings = dataclasses.replace(typed_settings(config, "demo", "sits"), cloud_masker="ukis-csmask")
    tile = tiles_for_area(settings.grid)[0]
    monkeypatch.setitem(sys.modules, "ukis_csmask.mask", None)  # as if not installed
    with pytest.raises(DataError, match=r"pip install -e '.\[csmask\]'"):
        build_tile_cube(items=items, tile=tile, settings=settings)
