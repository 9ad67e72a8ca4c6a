"""STAC search against a real HTTP server on 127.0.0.1 that injects faults, and on static catalogs."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cropmap.errors import SearchError
from cropmap.acquisition.search import search_items
from cropmap.settings import SearchSettings, from_dict

AOI = [-96.72, 39.29, -96.60, 39.39]
SEASON = {"start": "2023-03-01", "end": "2023-10-31"}


def _item(item_id="S2A_TEST_20230601", cloud=10.0):
    w, s, e, n = AOI
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": "sentinel-2-l2a",
        "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
        "bbox": AOI, "properties": {"datetime": "2023-06-01T17:21:34Z", "eo:cloud_cover": cloud},
        "links": [], "assets": {"red": {"href": "https://example.invalid/red.tif"}},
    }


class FaultyStacApi:
    """A STAC API whose /search answers `faults` (status codes, or "slow") before answering properly."""

    def __init__(self, faults=(), items=None):
        self.faults = list(faults)
        self.items = [_item()] if items is None else items
        self.search_requests = 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.startswith("/search"):
                    return self._search()
                root = f"http://127.0.0.1:{api.port}"
                self._send(200, {
                    "type": "Catalog", "id": "faulty", "description": "test API", "stac_version": "1.0.0",
                    "conformsTo": ["https://api.stacspec.org/v1.0.0/core",
                                   "https://api.stacspec.org/v1.0.0/item-search",
                                   "https://api.stacspec.org/v1.0.0/item-search#query"],
                    "links": [{"rel": "self", "href": root}, {"rel": "root", "href": root},
                              {"rel": "search", "href": f"{root}/search", "method": "POST"},
                              {"rel": "search", "href": f"{root}/search", "method": "GET"}],
                })

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._search()

            def _search(self):
                api.search_requests += 1
                if api.faults:
                    fault = api.faults.pop(0)
                    if fault == "slow":
                        time.sleep(1.5)
                        return self._send(200, {"type": "FeatureCollection", "features": []})
                    return self._send(fault, {"code": "fault", "description": f"injected {fault}"})
                self._send(200, {"type": "FeatureCollection", "features": api.items, "links": []})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def search_settings(*, stac: dict, season: dict = SEASON) -> dict:
    return {"grid": {"aoi": {"bbox": AOI}, "crs": "auto", "resolution": 10, "tile_size": 512}, "season": season,
            "stac": stac}


def settings(url, **stac):
    return from_dict(SearchSettings, search_settings(stac={
        "api": url, "collection": "sentinel-2-l2a", "max_cloud_cover": 80, "max_items": 100, "retries": 3,
        "backoff_s": 0.01, "timeout_s": 5, **stac}))


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_transient_errors_are_retried(status):
    with FaultyStacApi(faults=[status, status]) as api:
        items = search_items(settings=settings(api.url))
    assert [i.id for i in items] == ["S2A_TEST_20230601"]
    assert api.search_requests == 3


@pytest.mark.parametrize("status", [503, 429])
def test_persistent_errors_fail_naming_url_and_status(status):
    with FaultyStacApi(faults=[status] * 10) as api:
        with pytest.raises(SearchError) as info:
            search_items(settings=settings(api.url, retries=2))
    assert api.url in str(info.value) and f"HTTP {status}" in str(info.value)
    assert api.search_requests == 3  # the first try and two retries


def test_timeouts_fail_naming_url():
    with FaultyStacApi(faults=["slow"] * 10) as api:
        with pytest.raises(SearchError, match="timed out") as info:
            search_items(settings=settings(api.url, retries=1, timeout_s=0.3))
    assert api.url in str(info.value)


def test_no_items_names_aoi_dates_and_filters():
    with FaultyStacApi(items=[_item(cloud=95.0)]) as api:
        with pytest.raises(SearchError) as info:
            search_items(settings=settings(api.url))
    message = str(info.value)
    assert "no sentinel-2-l2a items" in message and "2023-03-01..2023-10-31" in message
    assert "cloud cover <= 80" in message and "-96.72" in message


def test_duplicate_items_are_dropped():
    with FaultyStacApi(items=[_item(), _item(), _item("S2B_TEST_20230606")]) as api:
        items = search_items(settings=settings(api.url))
    assert sorted(i.id for i in items) == ["S2A_TEST_20230601", "S2B_TEST_20230606"]


def _static_catalog(tmp_path):
    import datetime as dt

    import pystac

    catalog = pystac.Catalog(id="c", description="test")
    collection = pystac.Collection(id="sentinel-2-l2a", description="t", extent=pystac.Extent(
        pystac.SpatialExtent([AOI]), pystac.TemporalExtent([[None, None]])))
    catalog.add_child(collection)
    for k in range(20):
        raw = _item(f"S2A_TEST_2023060{k % 9 + 1}_{k}")
        item = pystac.Item.from_dict(raw)
        item.datetime = dt.datetime(2023, 6, 1 + k, 17, tzinfo=dt.timezone.utc)
        collection.add_item(item)
    catalog.normalize_hrefs(str(tmp_path / "catalog"))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return tmp_path / "catalog" / "catalog.json"


def test_static_catalog_is_searched_with_the_same_filters(tmp_path):
    path = _static_catalog(tmp_path)
    items = search_items(settings=from_dict(SearchSettings, search_settings(
        season={"start": "2023-06-05", "end": "2023-06-10"},
        stac={"catalog": str(path), "collection": "sentinel-2-l2a", "max_cloud_cover": 80})))
    assert [i.datetime.day for i in items] == [5, 6, 7, 8, 9, 10]


def test_full_disk_fails_clearly_and_leaves_no_partial_file(tmp_path):
    """The search step writing its ItemCollection under a 2 kB file-size limit."""
    import os
    import subprocess
    import sys

    path = _static_catalog(tmp_path)
    settings = search_settings(stac={"catalog": str(path), "collection": "sentinel-2-l2a", "max_cloud_cover": 80})
    out = tmp_path / "out" / "items.json"
    limit = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
             "resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000)); "
             "from cropmap.cli import main; sys.exit(main(sys.argv[1:]))")
    run = subprocess.run([sys.executable, "-c", limit, "search", "--settings", json.dumps(settings), "--out", str(out)],
                         capture_output=True, text=True, env=dict(os.environ))
    assert run.returncode == 1
    assert "disk is full or the file size limit was reached" in run.stderr
    assert not out.exists() and list(out.parent.iterdir()) == []
