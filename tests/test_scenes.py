"""Broken scenes: served over real HTTP (404, 503) or broken on disk (truncated, wrong CRS), retried,
skipped and recorded; too few readable scenes fail the tile; an all-cloud tile is written, flagged."""

import dataclasses
import json
import re
import shutil
import multiprocessing
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import rasterio

from cropmap.config import typed_settings
from cropmap.demo.area import make_demo
from cropmap.errors import DataError
from cropmap.grid import tiles_for_area
from cropmap.acquisition.search import search_items
from cropmap.acquisition.sits import build_tile_cube

TILE = 64


def _config(tmp: Path) -> dict:
    from conftest import one_tile_demo_config
    from cropmap.grid import Tile

    return one_tile_demo_config(
        tmp, Tile(1088, 6800, "EPSG:32614", 10.0, TILE), season={"start": "2023-05-01", "end": "2023-07-31"},
        demo={"seed": 5, "revisit_days": 10},
        sits={"interval_days": 30, "min_scenes": 3, "read_retries": 2, "read_backoff_s": 0.01},
        predict={"window": 40, "overlap": 8})


@pytest.fixture(scope="module")
def demo_scenes(tmp_path_factory):
    """A one-tile demo area written once; each test copies it."""
    root = tmp_path_factory.mktemp("scenes")
    config = _config(root)
    make_demo(settings=typed_settings(config, "demo", "demo"), out_dir=root)
    return root


@pytest.fixture
def area(demo_scenes, tmp_path):
    shutil.copytree(demo_scenes, tmp_path, dirs_exist_ok=True)
    config = _config(tmp_path)
    items = list(search_items(settings=typed_settings(config, "demo", "search")))
    tile = tiles_for_area(typed_settings(config, "demo", "sits").grid)[0]
    return config, items, tile


def _href(item, key) -> Path:
    return Path(item.assets[key].get_absolute_href())


class AssetServer:
    """Serves a folder over HTTP with byte ranges (as GDAL's /vsicurl/ reads COGs); `faults` maps a
    file name to the statuses answered before the file is served (a status of 404 repeats).

    It runs in a child process: GDAL may hold the GIL while it waits for an answer."""

    def __init__(self, root: Path, faults: dict[str, list[int]], *, delay_s: float = 0.0):
        ctx = multiprocessing.get_context("fork")
        ready = ctx.Queue()
        # requests being answered now, and the most at once
        self.in_flight, self.most_in_flight = ctx.Value("i", 0), ctx.Value("i", 0)
        self.process = ctx.Process(target=_serve_folder, daemon=True,
                                   args=(root, faults, ready, delay_s, self.in_flight, self.most_in_flight))
        self.process.start()
        self.url = f"http://127.0.0.1:{ready.get(timeout=30)}"

    def close(self):
        self.process.terminate()
        self.process.join(10)


def _serve_folder(root: Path, faults: dict[str, list[int]], ready, delay_s, in_flight, most_in_flight) -> None:
    import time

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_HEAD(self):
            self.do_GET(body=False)

        def do_GET(self, body=True):
            with in_flight.get_lock():
                in_flight.value += 1
                most_in_flight.value = max(most_in_flight.value, in_flight.value)
            try:
                time.sleep(delay_s)  # a round trip
                self._answer(body)
            finally:
                with in_flight.get_lock():
                    in_flight.value -= 1

        def _answer(self, body):
            name = self.path.lstrip("/")
            pending = faults.get(name, []) or ([] if (root / name).is_file() else [404])
            if pending:
                status = pending[0] if pending[0] == 404 else pending.pop(0)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = (root / name).read_bytes()
            match = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            start, end = (int(match[1]), int(match[2] or len(data) - 1)) if match else (0, len(data) - 1)
            end = min(end, len(data) - 1)
            self.send_response(206 if match else 200)
            self.send_header("Accept-Ranges", "bytes")
            if match:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            if body:
                self.wfile.write(data[start:end + 1])

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ready.put(httpd.server_address[1])
    httpd.serve_forever()


def _serve(items, root: Path, faults, *, delay_s: float = 0.0):
    """The items with every asset href pointing at an HTTP server over `root`."""
    server = AssetServer(root, faults, delay_s=delay_s)
    served = []
    for item in items:
        item = item.clone()
        for asset in item.assets.values():
            asset.href = f"{server.url}/{Path(asset.get_absolute_href()).relative_to(root)}"
        served.append(item)
    return served, server


def test_broken_scenes_are_retried_skipped_recorded_and_leave_no_trace(area, tmp_path):
    config, items, tile = area
    settings = typed_settings(config, "demo", "sits")
    assert len(items) >= 8
    truncated, missing, wrong_crs = items[1], items[3], items[5]
    broken = {truncated.id, missing.id, wrong_crs.id}
    clean = build_tile_cube(items=[i for i in items if i.id not in broken], tile=tile, settings=settings)

    # a COG cut off after its header: opens, fails while reading pixels
    path = _href(truncated, "B04")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    # a file whose georeferencing disagrees with the STAC metadata (EPSG:32614)
    path = _href(wrong_crs, "B08")
    with rasterio.open(path) as src:
        profile, data = src.profile, src.read()
    profile.update(crs="EPSG:32615", driver="GTiff")
    path.unlink()
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    # over HTTP: the missing scene's SCL answers 404; another scene's B02 answers 503 twice, then works
    flaky = items[6]
    faults = {str(_href(missing, "SCL").relative_to(tmp_path)): [404],
              str(_href(flaky, "B02").relative_to(tmp_path)): [503, 503]}
    served, server = _serve(items, tmp_path, faults)
    try:
        cube = build_tile_cube(items=served, tile=tile, settings=settings)
    finally:
        server.close()

    skipped = {s["item_id"]: s for s in json.loads(cube.attrs["skipped_scenes"])}
    assert set(skipped) == broken  # the flaky scene was retried and kept
    assert "disagrees with its STAC metadata" in skipped[wrong_crs.id]["reason"]
    assert "cannot be read: HTTP response code: 404" in skipped[missing.id]["reason"]  # not retried
    assert "cannot be read" in skipped[truncated.id]["reason"]
    assert cube.attrs["scenes_skipped"] == 3
    assert cube.attrs["scenes_loaded"] == len(items) - 3
    # nothing of the broken scenes leaks into the composites
    np.testing.assert_array_equal(cube["reflectance"].values, clean["reflectance"].values)
    np.testing.assert_array_equal(cube["clear_count"].values, clean["clear_count"].values)


@pytest.mark.parametrize("message, calls", [("HTTP response code: 404", 1), ("/data/a.tif: No such file or directory", 1),
                                            ("HTTP response code: 503", 3), ("TIFFReadEncodedTile() failed", 3)])
def test_a_missing_file_is_not_retried_other_read_errors_are(message, calls):
    from rasterio.errors import RasterioIOError

    from cropmap.acquisition.scenes import with_retries

    attempts = []

    def read():
        attempts.append(1)
        raise RasterioIOError(message)

    with pytest.raises(RasterioIOError, match=re.escape(message)):
        with_retries(read, retries=2, backoff_s=0.0, what="a scene")
    assert len(attempts) == calls


def test_too_few_readable_scenes_fail_with_the_count_and_the_threshold(area):
    config, items, tile = area
    settings = dataclasses.replace(typed_settings(config, "demo", "sits"), min_scenes=len(items))
    _href(items[2], "SCL").unlink()
    with pytest.raises(DataError, match=rf"{len(items) - 1} readable scenes of {len(items)} \(1 skipped.*"
                                        rf"fewer than sits.min_scenes = {len(items)}"):
        build_tile_cube(items=items, tile=tile, settings=settings)


def test_all_cloud_tile_is_written_and_flagged(area, tmp_path):
    config, items, tile = area
    for item in items:
        path = _href(item, "SCL")
        with rasterio.open(path) as src:
            profile, data = src.profile, src.read()
        path.unlink()
        with rasterio.open(path, "w", **dict(profile, driver="GTiff")) as dst:
            dst.write(np.full_like(data, 9))  # cloud, high probability
    cube = build_tile_cube(items=items, tile=tile, settings=typed_settings(config, "demo", "sits"))
    assert cube.attrs["no_clear_observation"] == 1
    assert cube["never_observed"].values.all()
    assert (cube["reflectance"].values == -9999).all()
    assert int(cube["clear_count"].sum()) == 0


def test_items_of_other_tiles_are_not_read(area):
    config, items, tile = area
    far = items[0].clone()
    far.id = "far-away"
    far.bbox = [10.0, 50.0, 10.1, 50.1]
    for asset in far.assets.values():
        asset.href = "/nonexistent/far.tif"
    cube = build_tile_cube(items=[*items, far], tile=tile, settings=typed_settings(config, "demo", "sits"))
    assert cube.attrs["scenes_found"] == len(items)
    assert cube.attrs["scenes_skipped"] == 0



def test_a_cube_of_the_10m_bands_alone_has_their_values_in_the_full_cube(area):
    """SCL stays on its 20 m grid when no reflectance band is read there."""
    config, items, tile = area
    settings = typed_settings(config, "demo", "sits")
    full = build_tile_cube(items=items, tile=tile, settings=settings)
    ten_m = ["B02", "B03", "B04", "B08"]
    alone = build_tile_cube(items=items, tile=tile, settings=dataclasses.replace(settings, bands=ten_m))
    assert list(alone["band"].values) == ten_m
    np.testing.assert_array_equal(alone["reflectance"].values, full["reflectance"].sel(band=ten_m).values)
    np.testing.assert_array_equal(alone["clear_count"].values, full["clear_count"].values)


def test_a_distributed_dask_scheduler_builds_the_same_cube(area):
    distributed = pytest.importorskip("distributed")
    config, items, tile = area
    settings = typed_settings(config, "demo", "sits")
    local = build_tile_cube(items=items, tile=tile, settings=settings)
    environment = dict(os.environ)  # distributed sets OMP_NUM_THREADS=1 and more in this process
    try:
        remote = _build_on_local_cluster(distributed, items, tile, settings)
    finally:
        os.environ.clear()
        os.environ.update(environment)
    np.testing.assert_array_equal(remote["reflectance"].values, local["reflectance"].values)
    np.testing.assert_array_equal(remote["clear_count"].values, local["clear_count"].values)


def _build_on_local_cluster(distributed, items, tile, settings):
    from cropmap.acquisition.sits import dask_client

    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster:
        with dask_client(cluster.scheduler_address) as client:
            remote = build_tile_cube(items=items, tile=tile, settings=settings)
            # the loads ran on the cluster
            assert client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.task_prefixes)) > 0
    return remote


def test_read_settings_travel_with_the_reader_not_the_process_environment(area):
    """GDAL's retry options reach every read (on dask workers too) through the reader's captured
    environment; building a cube changes no environment variable of the process."""
    from cropmap.acquisition.scenes import CheckedRioDriver

    config, items, tile = area
    before = dict(os.environ)
    build_tile_cube(items=items, tile=tile, settings=typed_settings(config, "demo", "sits"))
    assert dict(os.environ) == before
    env = CheckedRioDriver({}, gdal_options={"GDAL_HTTP_MAX_RETRY": "2"}).capture_env()
    assert env["GDAL_HTTP_MAX_RETRY"] == "2" and env["VSI_CACHE"] is False


def test_the_checked_reader_reads_what_odcs_stock_reader_reads(area, monkeypatch):
    """On clean data, the cube built through CheckedRioDriver (its copy of odc-loader's read with the
    CRS check) equals the cube built through odc-loader's own RioDriver."""
    import odc.loader

    import cropmap.acquisition.scenes

    config, items, tile = area
    settings = typed_settings(config, "demo", "sits")
    checked = build_tile_cube(items=items, tile=tile, settings=settings)
    monkeypatch.setattr(cropmap.acquisition.scenes, "CheckedRioDriver", lambda stated_crs, gdal_options: odc.loader.RioDriver())
    stock = build_tile_cube(items=items, tile=tile, settings=settings)
    for name in ("reflectance", "clear_count", "never_observed"):
        np.testing.assert_array_equal(checked[name].values, stock[name].values)


def test_an_unreachable_scheduler_is_one_clear_error():
    pytest.importorskip("distributed")
    from cropmap.acquisition.sits import dask_client

    with pytest.raises(DataError, match="cannot reach the dask scheduler tcp://127.0.0.1:9"):
        with dask_client("tcp://127.0.0.1:9"):
            pass



def test_a_cube_file_is_cf_reflectance_for_xarray_and_rioxarray(area, tmp_path):
    """Plain xarray scales and masks the int16 on disk; rioxarray finds the grid; cropmap reads the integers."""
    import rioxarray  # noqa: F401  (registers .rio)
    import xarray as xr

    from cropmap.acquisition.cube import open_cube, write_cube

    config, items, tile = area
    cube = build_tile_cube(items=items, tile=tile, settings=typed_settings(config, "demo", "sits"))
    cube["reflectance"].values[0, :, 0, 0] = -9999  # a never-observed value
    write_cube(cube, tmp_path / "cube.nc")
    with xr.open_dataset(tmp_path / "cube.nc") as ds:
        assert ds.attrs["Conventions"] == "CF-1.10"
        refl = ds["reflectance"]
        assert refl.dtype.kind == "f" and refl.encoding["dtype"] == "int16"
        raw = cube["reflectance"].values
        np.testing.assert_allclose(refl.values[raw != -9999], raw[raw != -9999] / 10000, rtol=1e-6)
        assert np.isnan(refl.values[0, :, 0, 0]).all() and not np.isnan(refl.values[raw != -9999]).any()
        assert -0.1 <= float(refl.min()) and float(refl.max()) <= 1.5  # L2A reflectance dips below 0
        bounds = ds["time_bnds"].values
        assert ds["time"].attrs["bounds"] == "time_bnds" and (bounds[:, 0] < ds["time"].values).all()
        assert (ds["time"].values < bounds[:, 1]).all() and (bounds[1:, 0] == bounds[:-1, 1]).all()
        assert ds["reflectance"].attrs["units"] == "1"
    with xr.open_dataset(tmp_path / "cube.nc", decode_coords="all") as ds:  # rioxarray's accessor on it
        assert ds["reflectance"].rio.crs.to_epsg() == 32614
        assert ds["reflectance"].rio.transform() == tile.transform
        assert ds.rio.bounds() == tile.bounds
    again = open_cube(tmp_path / "cube.nc")
    assert again["reflectance"].dtype == np.int16
    np.testing.assert_array_equal(again["reflectance"].values, cube["reflectance"].values)


def test_reads_over_http_overlap_beyond_the_cores_and_give_the_local_cube(area, tmp_path):
    """`sits.read_threads` sets the reads in flight apart from the CPU threads (issue 22): with
    a round trip of 30 ms, many more requests wait at once than there are cores, and the cube
    is the one built from the local files."""
    config, items, tile = area
    settings = dataclasses.replace(typed_settings(config, "demo", "sits"), read_threads=16)
    local = build_tile_cube(items=items, tile=tile, settings=settings)
    served, server = _serve(items, tmp_path, {}, delay_s=0.03)
    try:
        remote = build_tile_cube(items=served, tile=tile, settings=settings)
        most = server.most_in_flight.value
    finally:
        server.close()
    assert most > 2 * len(os.sched_getaffinity(0)), most
    np.testing.assert_array_equal(remote["reflectance"].values, local["reflectance"].values)


def test_remote_assets_get_the_reader_threads_local_ones_the_cores(area, tmp_path):
    from cropmap.acquisition.sits import read_threads

    _, items, _ = area
    served, server = _serve(items[:2], tmp_path, {})
    server.close()
    assert read_threads(served, ["B04", "SCL"], 48) == 48
    assert read_threads(items, ["B04", "SCL"], 48) == len(os.sched_getaffinity(0))
