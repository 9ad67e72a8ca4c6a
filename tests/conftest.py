import copy
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def write_raster(path, data, *, transform, crs, nodata=None):
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    with rasterio.open(path, "w", driver="GTiff", height=data.shape[1], width=data.shape[2], count=data.shape[0],
                       dtype=data.dtype, crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(data)
    return path


@pytest.fixture
def raster_writer(tmp_path):
    def _write(name, data, **kw):
        return write_raster(tmp_path / name, data, **kw)

    return _write


def headless_browser():
    """Selenium's Chromium, headless and offline (skips the test where Chromium is not installed)."""
    import shutil

    webdriver = pytest.importorskip("selenium.webdriver")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("headless Chromium and chromedriver are not installed (.ci/run installs them with apt)")
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,1000"):
        opts.add_argument(arg)
    opts.binary_location = chromium
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver), options=opts)


def shared_fixture(*parts) -> Path:
    path = SHARED.joinpath("fixtures", *parts)
    if not path.exists():
        pytest.skip(f"shared fixture {path} is not present (it lives beside the repo in ../shared)")
    return path


def bbox_inside(tile, inset_m: float = 20.0) -> list[float]:
    """A lon/lat bbox strictly inside `tile`, so that the tile is the only one of its grid."""
    from pyproj import Transformer

    left, bottom, right, top = tile.bounds
    xs, ys = Transformer.from_crs(tile.crs, "EPSG:4326", always_xy=True).transform(
        [left + inset_m, right - inset_m, left + inset_m, right - inset_m],
        [bottom + inset_m, bottom + inset_m, top - inset_m, top - inset_m])
    return [max(xs[0], xs[2]), max(ys[0], ys[1]), min(xs[1], xs[3]), min(ys[2], ys[3])]


def one_tile_demo_config(tmp, tile, *, season: dict, demo: dict, **sections) -> dict:
    """A validated config of a demo area whose only tile is `tile`, its data under `tmp`;
    `sections` are top-level config sections (sits, predict, ...)."""
    from cropmap.config import validate_config

    return validate_config({
        "areas": {"demo": {
            "aoi": {"bbox": bbox_inside(tile)}, "crs": tile.crs, "tile_size": tile.size,
            "season": season, "stac": {"catalog": str(tmp / "stac" / "catalog.json"), "max_cloud_cover": 100},
            "demo": demo, "glc": {"a": {"type": "esa-worldcover", "path": str(tmp / "glc" / "worldcover.tif")}},
        }},
        **sections,
        "allow_absolute_paths": True,
    })


MINIMAL_AREA = {
    "aoi": {"bbox": [-96.717, 39.2978, -96.6082, 39.3823]},
    "season": {"start": "2023-03-01", "end": "2023-10-31"},
    "stac": {"catalog": "catalog.json"},
    "glc": {"a": {"type": "esa-worldcover", "path": "a.tif"}},
}


@pytest.fixture
def minimal_config():
    return {"areas": {"demo": copy.deepcopy(MINIMAL_AREA)}}


__all__ = ["write_raster", "shared_fixture", "headless_browser", "Affine", "REPO"]
