"""Catalog presets, and credentials: a Planetary Computer key is read from the environment, used to
sign asset URLs in memory, and never reaches a log, an output or a saved item collection."""

import datetime as dt
import json
import multiprocessing
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pystac
import pytest
import xarray as xr

from cropmap.config import settings_json, validate_config
from cropmap.acquisition.credentials import redact

KEY = "pc-subscription-key-0123456789abcdef"
SAS_TOKEN = "st=2026-11-22&se=2026-11-23&sp=rl&sig=SECRETSIGNATURE42"


def _area(stac):
    return {"areas": {"a": {"aoi": {"bbox": [-96.7, 39.3, -96.6, 39.38]},
                            "season": {"start": "2023-03-01", "end": "2023-10-31"}, "stac": stac,
                            "glc": {"w": {"type": "esa-worldcover", "path": "w.tif"}}}}}


@pytest.mark.parametrize(("preset", "api", "collection", "sign"), [
    ("earth-search", "https://earth-search.aws.element84.com/v1", "sentinel-2-l2a", "none"),
    ("earth-search-c1", "https://earth-search.aws.element84.com/v1", "sentinel-2-c1-l2a", "none"),
    ("planetary-computer", "https://planetarycomputer.microsoft.com/api/stac/v1", "sentinel-2-l2a", "planetary-computer"),
])
def test_presets_fill_the_catalog(preset, api, collection, sign):
    stac = validate_config(_area({"preset": preset}))["areas"]["a"]["stac"]
    assert (stac["api"], stac["collection"], stac["sign"]) == (api, collection, sign)


def test_config_values_win_over_the_preset():
    stac = validate_config(_area({"preset": "earth-search", "collection": "sentinel-2-c1-l2a"}))["areas"]["a"]["stac"]
    assert stac["collection"] == "sentinel-2-c1-l2a"


def test_redact_removes_url_tokens_and_credential_values(monkeypatch):
    monkeypatch.setenv("PC_SDK_SUBSCRIPTION_KEY", KEY)
    text = redact(f"'/vsicurl/https://x.blob.core.windows.net/c/B04.tif?{SAS_TOKEN}' failed; key {KEY}")
    assert SAS_TOKEN not in text and "SECRETSIGNATURE42" not in text and KEY not in text
    assert "https://x.blob.core.windows.net/c/B04.tif?<redacted>" in text and "<PC_SDK_SUBSCRIPTION_KEY>" in text


def _token_service(keys_seen: Path, ready) -> None:
    """The Planetary Computer SAS endpoint: GET /{account}/{container} -> a token."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            with keys_seen.open("a") as f:
                f.write(f"{self.path} {self.headers.get('Ocp-Apim-Subscription-Key')}\n")
            expiry = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            body = json.dumps({"msft:expiry": expiry, "token": SAS_TOKEN}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ready.put(httpd.server_address[1])
    httpd.serve_forever()


def test_subscription_key_signs_urls_and_is_never_written(tmp_path):
    from test_scenes import _config

    from cropmap.config import typed_settings
    from cropmap.demo.area import make_demo
    from cropmap.grid import tiles_for_area
    from cropmap.acquisition.search import save_items, search_items

    config = _config(tmp_path)
    config["areas"]["demo"]["stac"]["sign"] = "planetary-computer"
    make_demo(settings=typed_settings(config, "demo", "demo"), out_dir=tmp_path)
    items = list(search_items(settings=typed_settings(config, "demo", "search")))
    # one scene lives in Azure blob storage: its URLs get signed (and it cannot be read offline)
    azure = items[2]
    for key, asset in azure.assets.items():
        asset.href = f"https://cropmapdemo.blob.core.windows.net/sentinel2-l2/{azure.id}/{key}.tif"
    items_path = tmp_path / "items.json"
    save_items(pystac.ItemCollection(items), items_path)
    saved = items_path.read_text()

    keys_seen = tmp_path / "token_requests.txt"
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Queue()
    service = ctx.Process(target=_token_service, args=(keys_seen, ready), daemon=True)
    service.start()
    try:
        env = dict(os.environ, PC_SDK_SUBSCRIPTION_KEY=KEY,
                   PC_SDK_SAS_URL=f"http://127.0.0.1:{ready.get(timeout=30)}/api/sas/v1/token",
                   GDAL_HTTP_TIMEOUT="5", GDAL_HTTP_CONNECTTIMEOUT="5")
        tile = tiles_for_area(typed_settings(config, "demo", "sits").grid)[0]
        cube_path = tmp_path / "cube.nc"
        run = subprocess.run(
            [sys.executable, "-m", "cropmap", "sits", "--settings", settings_json(config, "demo", "sits"),
             "--items", str(items_path), "--tile", tile.id, "--out", str(cube_path)],
            env=env, capture_output=True, text=True, timeout=600)
    finally:
        service.terminate()
        service.join(10)
    assert run.returncode == 0, run.stderr[-3000:]

    assert f"/cropmapdemo/sentinel2-l2 {KEY}" in keys_seen.read_text()  # the key was used, from the environment
    with xr.open_dataset(cube_path, engine="netcdf4") as cube:
        skipped = json.loads(cube.attrs["skipped_scenes"])
    assert [s["item_id"] for s in skipped] == [azure.id]
    written = [run.stdout, run.stderr, cube_path.read_bytes().decode("latin-1"), items_path.read_text()]
    for text in written:
        assert KEY not in text and "SECRETSIGNATURE42" not in text
    assert items_path.read_text() == saved  # saved items keep their unsigned URLs
    # the failure is still reported, with the signed URL's token redacted
    assert "blob.core.windows.net/sentinel2-l2/" in run.stderr and "?<redacted>" in run.stderr
