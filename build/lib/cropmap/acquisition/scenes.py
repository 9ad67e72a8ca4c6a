"""Which scenes of a tile can be read: retries with backoff, then skip and say why.

A remote archive of thousands of files always has a few that fail: a 404, a truncated COG, a file
whose georeferencing disagrees with its STAC metadata. One such scene must not stop a tile, and it
must not slip into the composite either. `CheckedRioDriver` is the odc-stac reader that refuses a
file whose CRS is not the one its item states; `with_retries` retries transient failures with
backoff; `cropmap.acquisition.sits` skips the scenes that still fail and records them as `SkippedScene`s.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np
import pystac
import rasterio
from affine import Affine
from odc.geo.geobox import GeoBox
from odc.geo.overlap import compute_reproject_roi
from odc.loader import RioDriver, RioReader
# No public route: odc-loader's reader opens a file and reads it in one private function
# (`_rio_read`), and the CRS check belongs between the two, in the same open. `_CheckedRioReader.read`
# is that function's body with the check; these are the pieces it calls (pinned odc-loader < 0.7;
# tests/test_scenes.py compares the result with the stock reader's on clean data).
from odc.loader._reader import pick_overview, resolve_band_query
from odc.loader._rio import _do_read, _reproject_info_from_rio
from odc.loader.types import RasterLoadParams, RasterSource
from pyproj import CRS

from cropmap.acquisition.credentials import redact
from cropmap.errors import DataError

log = logging.getLogger(__name__)

__all__ = ["AssetMismatch", "CheckedRioDriver", "SkippedScene", "crs_problem", "expected_crs", "first_line",
           "is_missing_file", "stated_crs_by_href", "with_retries"]

T = TypeVar("T")


@dataclass(frozen=True)
class SkippedScene:
    """A scene left out of a tile's cube, and why."""

    item_id: str
    asset: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


# what GDAL says of a file that is not there: retrying cannot mend it
_MISSING_FILE = ("HTTP response code: 404", "No such file or directory")


def is_missing_file(err: BaseException) -> bool:
    """Whether `err` says the file does not exist (HTTP 404, no such local file)."""
    return any(text in str(err) for text in _MISSING_FILE)


def with_retries(read: Callable[[], T], *, retries: int, backoff_s: float, what: str) -> T:
    """`read()`, retried up to `retries` times on an I/O error, waiting `backoff_s` * 2**k plus up to
    50 % jitter before retry k; the last error is raised, at once for a missing file."""
    for attempt in range(retries + 1):
        try:
            return read()
        except (OSError, rasterio.errors.RasterioError) as err:
            if attempt == retries or is_missing_file(err):
                raise
            delay = backoff_s * 2**attempt * (1 + 0.5 * random.random())
            log.info("%s failed (%s); retry %d of %d in %.1f s", what, first_line(err), attempt + 1, retries, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def expected_crs(item: pystac.Item, asset_key: str) -> CRS | None:
    """The CRS the item's metadata gives for an asset (asset-level `proj:` wins), None if unstated."""
    for fields in (item.assets[asset_key].extra_fields, item.properties):
        if fields.get("proj:code"):
            return CRS.from_user_input(fields["proj:code"])
        if fields.get("proj:epsg"):
            return CRS.from_epsg(int(fields["proj:epsg"]))
        if fields.get("proj:wkt2"):
            return CRS.from_wkt(fields["proj:wkt2"])
    return None


class AssetMismatch(DataError):
    """An asset whose file disagrees with its STAC metadata: not retried, its scene is skipped."""


@functools.lru_cache(maxsize=256)  # an area's scenes share a few CRSs; parsing WKT costs more than a read
def crs_problem(stated_wkt: str, found_wkt: str) -> str | None:
    """Why a file whose CRS is `found_wkt` ("" for none) does not match the CRS `stated_wkt` of its
    metadata (None: it does)."""
    stated, found = CRS.from_wkt(stated_wkt), CRS.from_wkt(found_wkt) if found_wkt else None
    if found is not None and found == stated:
        return None
    return f"file CRS {found.to_string() if found else 'none'} disagrees with its STAC metadata {stated.to_string()}"


class CheckedRioDriver(RioDriver):
    """odc-stac's rasterio reader, checking each file's CRS against its item's `proj:` metadata in the
    same open that reads its pixels (a separate check would open every asset twice).

    `stated_crs` maps an asset href to the WKT of the CRS its metadata states; `gdal_options` are
    GDAL configuration options for every read (for example GDAL's own HTTP retries).
    """

    def __init__(self, stated_crs: dict[str, str], *, gdal_options: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.stated_crs = stated_crs
        self.gdal_options = dict(gdal_options or {})

    def capture_env(self) -> dict[str, Any]:
        # odc's reader switches the VSI cache off around each read (a GDAL environment set and
        # restored per file); off for the whole task instead. The options also reach dask workers.
        return {**super().capture_env(), **self.gdal_options, "VSI_CACHE": False}

    def open(self, src: RasterSource, ctx: Any) -> RioReader:
        return _CheckedRioReader(src, ctx, self.stated_crs.get(src.uri))


class _CheckedRioReader(RioReader):
    def __init__(self, src: RasterSource, ctx: Any, stated_wkt: str | None) -> None:
        super().__init__(src, ctx)
        self._stated_wkt = stated_wkt

    def read(self, cfg: RasterLoadParams, dst_geobox: GeoBox, *, dst: np.ndarray | None = None,
             selection: Any = None) -> tuple[tuple[slice, slice], np.ndarray]:
        # the body of odc.loader's _rio_read, with the CRS check between open and read, and the
        # georeferencing maths cached (the scenes of one granule share their grid)
        src = self._src
        with rasterio.open(src.uri, "r", sharing=False) as rdr:
            found_wkt = rdr.crs.to_wkt() if rdr.crs else ""
            if self._stated_wkt:
                problem = crs_problem(self._stated_wkt, found_wkt)
                if problem:
                    raise AssetMismatch(f"{redact(src.uri)}: {problem}")
            bidx = resolve_band_query(src, rdr.count, selection=selection)
            ttol = 0.9 if cfg.nearest else 0.05
            info = (_reproject_info(tuple(rdr.transform)[:6], rdr.shape, found_wkt, tuple(dst_geobox.affine)[:6],
                                    tuple(dst_geobox.shape), str(dst_geobox.crs), ttol)
                    if not rdr.gcps[0] else _reproject_info_from_rio(rdr, dst_geobox, ttol=ttol))
            overview = None
            if cfg.use_overviews and info.read_shrink > 1:
                overview = pick_overview(info.read_shrink, rdr.overviews(bidx if isinstance(bidx, int) else bidx[0]))
            if overview is None:
                return _do_read(rasterio.band(rdr, bidx), cfg, dst_geobox, info, dst=dst)
            with rasterio.open(src.uri, "r", sharing=False, overview_level=overview) as reduced:
                return _do_read(rasterio.band(reduced, bidx), cfg, dst_geobox, info, dst=dst)


@functools.lru_cache(maxsize=256)
def _reproject_info(transform: tuple[float, ...], shape: tuple[int, int], crs_wkt: str,
                    dst_transform: tuple[float, ...], dst_shape: tuple[int, int], dst_crs: str, ttol: float):
    # keyed by plain values: hashing a GeoBox writes its CRS's WKT, on every read
    return compute_reproject_roi(GeoBox(shape, Affine(*transform), crs_wkt or None),
                                 GeoBox(dst_shape, Affine(*dst_transform), dst_crs), ttol=ttol)


def stated_crs_by_href(items: Sequence[pystac.Item], asset_keys: Sequence[str]) -> dict[str, str]:
    """{asset href: WKT of the CRS its metadata states} for the assets that state one."""
    stated = {}
    for item in items:
        for key in asset_keys:
            crs = expected_crs(item, key)
            if crs is not None:
                stated[item.assets[key].get_absolute_href() or item.assets[key].href] = crs.to_wkt()
    return stated


def first_line(err: BaseException) -> str:
    """The error's first line, without URL tokens or credentials (it goes to logs and the QA)."""
    return redact((str(err).strip().splitlines() or [type(err).__name__])[0])
