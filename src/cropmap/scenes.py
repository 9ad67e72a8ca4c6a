"""Which scenes of a tile can be read: retries with backoff, then skip and say why.

A remote archive of thousands of files always has a few that fail: a 404, a truncated COG, a file
whose georeferencing disagrees with its STAC metadata. One such scene must not stop a tile, and it
must not slip into the composite either. `readable_scenes` opens every asset of every scene (retrying
transient failures), checks its CRS against the item's `proj:` metadata, and returns the scenes
that pass with a record of the ones that did not.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TypeVar

import pystac
import rasterio
from pyproj import CRS

from cropmap.credentials import redact

log = logging.getLogger(__name__)

__all__ = ["SkippedScene", "asset_problem", "expected_crs", "first_line", "readable_scenes", "with_retries"]

T = TypeVar("T")


@dataclass(frozen=True)
class SkippedScene:
    """A scene left out of a tile's cube, and why."""

    item_id: str
    asset: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def with_retries(read: Callable[[], T], *, retries: int, backoff_s: float, what: str) -> T:
    """`read()`, retried up to `retries` times on an I/O error, waiting `backoff_s` * 2**k plus up to
    50 % jitter before retry k; the last error is raised."""
    for attempt in range(retries + 1):
        try:
            return read()
        except (OSError, rasterio.errors.RasterioError) as err:
            if attempt == retries:
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


def asset_problem(item: pystac.Item, asset_key: str, *, retries: int, backoff_s: float) -> str | None:
    """None when the asset opens and its CRS is the one its metadata states, else the reason."""
    href = item.assets[asset_key].get_absolute_href() or item.assets[asset_key].href

    def open_crs():
        with rasterio.open(href) as src:
            return src.crs

    try:
        crs = with_retries(open_crs, retries=retries, backoff_s=backoff_s, what=f"{item.id}/{asset_key}")
    except (OSError, rasterio.errors.RasterioError) as err:
        return f"cannot be read after {retries} retries: {first_line(err)}"
    stated = expected_crs(item, asset_key)
    if stated is not None and (crs is None or CRS.from_user_input(crs) != stated):
        return f"file CRS {crs.to_string() if crs else 'none'} disagrees with its STAC metadata {stated.to_string()}"
    return None


def readable_scenes(
    items: Sequence[pystac.Item], asset_keys: Sequence[str], *, retries: int, backoff_s: float, threads: int = 8,
) -> tuple[list[pystac.Item], list[SkippedScene]]:
    """The items whose assets all open with the stated CRS, and a record of the others.

    Assets are opened in `threads` threads (remote archives are latency-bound); only headers are read.
    """
    jobs = [(item, key) for item in items for key in asset_keys]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        problems = list(pool.map(lambda job: asset_problem(job[0], job[1], retries=retries, backoff_s=backoff_s), jobs))
    skipped: dict[str, SkippedScene] = {}
    for (item, key), problem in zip(jobs, problems):
        if problem and item.id not in skipped:
            skipped[item.id] = SkippedScene(item.id, key, problem)
    for scene in skipped.values():
        log.warning("scene %s skipped: asset %s %s", scene.item_id, scene.asset, scene.reason)
    return [item for item in items if item.id not in skipped], list(skipped.values())


def first_line(err: BaseException) -> str:
    """The error's first line, without URL tokens or credentials (it goes to logs and the QA)."""
    return redact((str(err).strip().splitlines() or [type(err).__name__])[0])
