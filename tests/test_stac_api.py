"""pystac-client against a real STAC API server (`rustac serve`, from PyPI) started on 127.0.0.1:
paging, the client-side cloud filter, and the cube built from what it finds."""

import dataclasses
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pystac
import pytest

from cropmap.config import typed_settings
from cropmap.demo.area import make_demo
from cropmap.grid import tiles_for_area
from cropmap.acquisition.search import search_items
from cropmap.acquisition.sits import build_tile_cube


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def stac_api(tmp_path):
    """A one-tile demo area; its items (absolute asset hrefs) served by rustac on a free port."""
    from test_scenes import _config

    rustac = shutil.which("rustac")
    if rustac is None:
        pytest.skip("rustac is not installed (pip install rustac; the test extras include it)")
    config = _config(tmp_path)
    make_demo(settings=typed_settings(config, "demo", "demo"), out_dir=tmp_path)
    items = list(search_items(settings=typed_settings(config, "demo", "search")))
    for item in items:
        for asset in item.assets.values():  # served items carry URLs, as a public API's do
            asset.href = Path(asset.get_absolute_href()).as_uri()
        item.clear_links()
    collection = tmp_path / "items.json"
    pystac.ItemCollection(items).save_object(dest_href=str(collection))
    port = _free_port()
    server = subprocess.Popen([rustac, "serve", "--create-collections", "--addr", f"127.0.0.1:{port}", str(collection)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url, timeout=1).read()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                time.sleep(0.1)
        yield config, items, url
    finally:
        server.terminate()
        server.wait(10)


def test_paged_search_of_a_real_api_finds_every_item_and_builds_the_same_cube(stac_api):
    config, items, url = stac_api
    api_config = dataclasses.replace(
        typed_settings(config, "demo", "search"),
        stac={"api": url, "collection": "sentinel-2-l2a", "max_cloud_cover": 100, "max_items": 2000,
              "page_size": 3, "retries": 1, "backoff_s": 0.1, "timeout_s": 10})
    found = list(search_items(settings=api_config))
    assert len(found) == len(items) > 3  # more than one page
    assert sorted(i.id for i in found) == sorted(i.id for i in items)

    tile = tiles_for_area(typed_settings(config, "demo", "sits").grid)[0]
    sits = typed_settings(config, "demo", "sits")
    from_api = build_tile_cube(items=found, tile=tile, settings=sits)
    from_catalog = build_tile_cube(items=items, tile=tile, settings=sits)
    np.testing.assert_array_equal(from_api["reflectance"].values, from_catalog["reflectance"].values)


def test_cloud_filter_holds_whether_or_not_the_api_honours_it(stac_api):
    config, items, url = stac_api
    threshold = float(np.median([i.properties["eo:cloud_cover"] for i in items]))
    api_config = dataclasses.replace(
        typed_settings(config, "demo", "search"),
        stac={"api": url, "collection": "sentinel-2-l2a", "max_cloud_cover": threshold,
              "max_items": 2000, "page_size": 5, "retries": 1, "backoff_s": 0.1, "timeout_s": 10})
    found = list(search_items(settings=api_config))
    expected = sorted(i.id for i in items if i.properties["eo:cloud_cover"] < threshold)
    assert sorted(i.id for i in found) == expected and expected


EARTH_SEARCH_KEYS = {"B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1", "B06": "rededge2",
                     "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B11": "swir16", "B12": "swir22", "SCL": "scl"}


def _earth_search_style(item: pystac.Item) -> pystac.Item:
    """Earth Search v1: common-name asset keys, scale and offset in raster:bands."""
    item = item.clone()
    item.assets = {EARTH_SEARCH_KEYS[key]: asset for key, asset in item.assets.items()}
    return item


def _planetary_computer_style(item: pystac.Item) -> pystac.Item:
    """Planetary Computer: band-id asset keys, no scale or offset published (the processing baseline
    says whether DNs carry the +1000 offset)."""
    item = item.clone()
    for asset in item.assets.values():
        asset.extra_fields.pop("raster:bands", None)
    return item


def test_earth_search_and_planetary_computer_items_of_the_same_scenes_give_the_same_cube(stac_api):
    config, items, _ = stac_api
    tile = tiles_for_area(typed_settings(config, "demo", "sits").grid)[0]
    sits = typed_settings(config, "demo", "sits")
    earth_search = build_tile_cube(items=[_earth_search_style(i) for i in items], tile=tile, settings=sits)
    planetary = build_tile_cube(items=[_planetary_computer_style(i) for i in items], tile=tile, settings=sits)
    assert list(earth_search["band"].values) == list(planetary["band"].values) == sits.bands
    difference = np.abs(earth_search["reflectance"].values.astype(int) - planetary["reflectance"].values.astype(int))
    assert difference.max() <= 1  # reflectance * 10000: equal to rounding
    assert (earth_search["reflectance"].values != -9999).any()
