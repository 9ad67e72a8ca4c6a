"""STAC search for Sentinel-2 L2A scenes over a study area and season.

A STAC API is searched with pystac-client (retries with backoff on 429/5xx); a local static
catalog is walked and filtered with the same filters (bbox, datetime, cloud cover), so both
sources give the same kind of ItemCollection.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable
from typing import Any

import pystac
from shapely.geometry import box, shape

from cropmap.errors import SearchError
from cropmap.grid import aoi_geometry
from cropmap.settings import SearchSettings, SeasonSettings

log = logging.getLogger(__name__)

__all__ = ["search_items", "find_items", "filter_items", "save_items", "search_to_file"]


def _season_bounds(season: SeasonSettings) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.fromisoformat(season.start).replace(tzinfo=dt.timezone.utc)
    end = dt.datetime.fromisoformat(season.end).replace(tzinfo=dt.timezone.utc) + dt.timedelta(days=1)
    return start, end


def filter_items(
    items: Iterable[pystac.Item], *, aoi, season: SeasonSettings, max_cloud_cover: float
) -> list[pystac.Item]:
    """Items whose footprint intersects `aoi` (lon/lat), dated within the season, cloud cover ≤ max."""
    start, end = _season_bounds(season)
    kept = []
    for item in items:
        when = item.datetime or item.common_metadata.start_datetime
        if when is None or not (start <= when < end):
            continue
        cloud = item.properties.get("eo:cloud_cover")
        if cloud is not None and cloud > max_cloud_cover:
            continue
        geom = shape(item.geometry) if item.geometry else box(*item.bbox)
        if geom.intersects(aoi):
            kept.append(item)
    return kept


def _dedupe(items: list[pystac.Item]) -> list[pystac.Item]:
    """Drop repeated item ids (an API page boundary or a catalog listing an item twice)."""
    seen: dict[str, pystac.Item] = {}
    for item in items:
        seen.setdefault(item.id, item)
    return sorted(seen.values(), key=lambda i: (i.datetime, i.id))


def _catalog_items(path: str, collection: str) -> list[pystac.Item]:
    try:
        catalog = pystac.Catalog.from_file(path)
    except (OSError, pystac.STACError, ValueError) as err:
        raise SearchError(f"cannot read the static STAC catalog {path}: {err}") from None
    items = []
    for child_collection in catalog.get_all_collections():
        if child_collection.id == collection:
            items.extend(child_collection.get_items(recursive=True))
    if not items and catalog.id == collection:
        items = list(catalog.get_items(recursive=True))
    for item in items:
        item.make_asset_hrefs_absolute()
    return items


def _search_catalog(path: str, collection: str, aoi, season, max_cloud_cover) -> list[pystac.Item]:
    items = _catalog_items(path, collection)
    return filter_items(items, aoi=aoi, season=season, max_cloud_cover=max_cloud_cover)


def _api_io(stac: dict[str, Any]):
    """pystac-client I/O that retries 429, 5xx answers and timeouts with exponential backoff
    (`backoff_s`, doubling) and jitter, at most `retries` times."""
    from pystac_client.stac_api_io import StacApiIO
    from urllib3 import Retry

    backoff = float(stac.get("backoff_s", 1.0))
    retry = Retry(total=int(stac.get("retries", 5)), backoff_factor=backoff, backoff_jitter=backoff / 2,
                  status_forcelist=[429, 500, 502, 503, 504], allowed_methods=None,
                  respect_retry_after_header=False, raise_on_status=True)
    return StacApiIO(max_retries=retry, timeout=float(stac.get("timeout_s", 60)))


def _open_client(stac: dict[str, Any]):
    from pystac_client import Client

    # Client.open resets the I/O's timeout to its own argument, so it is given twice
    return Client.open(stac["api"], stac_io=_api_io(stac), timeout=float(stac.get("timeout_s", 60)))


def _describe_failure(url: str, err: Exception) -> str:
    """`URL: status` of a failed request, from the exception chain of requests / urllib3."""
    text = f"{type(err).__name__}: {err}"
    status = re.search(r"too many (\d{3}) error responses|(\d{3}) (?:Server|Client) Error", text)
    if status:
        return f"STAC API {url} answered HTTP {status.group(1) or status.group(2)} after all retries"
    if "timed out" in text.lower() or "timeout" in text.lower():
        return f"STAC API {url} timed out after all retries"
    return f"STAC search at {url} failed: {text}"


def _search_api(stac: dict[str, Any], aoi, season) -> list[pystac.Item]:
    url, collection, max_cloud_cover = stac["api"], stac["collection"], stac["max_cloud_cover"]
    try:
        from pystac_client.conformance import ConformanceClasses

        client = _open_client(stac)
        start, end = _season_bounds(season)
        # an API without the query extension may answer a query with nothing: ask only those that
        # declare it, and filter on the client in any case
        query = ({"eo:cloud_cover": {"lt": max_cloud_cover}}
                 if client.conforms_to(ConformanceClasses.QUERY) else None)
        search = client.search(
            collections=[collection], intersects=aoi.__geo_interface__,
            datetime=(start, end - dt.timedelta(seconds=1)),
            query=query, max_items=stac["max_items"], limit=stac.get("page_size", 100),
        )
        items = list(search.items())
    except Exception as err:  # pystac-client raises APIError, requests errors, ...
        raise SearchError(_describe_failure(url, err)) from None
    # not every API honours the query extension: filter on the client as well
    return filter_items(items, aoi=aoi, season=season, max_cloud_cover=max_cloud_cover)


def find_items(stac: dict[str, Any], footprint, *, datetime: str | None = None) -> list[pystac.Item]:
    """Items of `stac["collection"]` intersecting `footprint` (lon/lat), from `stac["api"]` or the
    local static catalog `stac["catalog"]`; `datetime` is a STAC datetime or interval string."""
    if "catalog" in stac:
        items = _catalog_items(stac["catalog"], stac["collection"])
        items = [i for i in items if shape(i.geometry).intersects(footprint)]
        if datetime:
            start, _, end = datetime.partition("/")
            items = [i for i in items if _within(i, start, end or start)]
        return _dedupe(items)
    try:
        client = _open_client(stac)
        search = client.search(collections=[stac["collection"]], intersects=footprint.__geo_interface__,
                               datetime=datetime, max_items=stac.get("max_items", 500))
        return _dedupe(list(search.items()))
    except Exception as err:
        raise SearchError(_describe_failure(stac["api"], err)) from None


def _within(item: pystac.Item, start: str, end: str) -> bool:
    """Whether the item's date is in [start, end]; bounds may be partial ("2021", "2021-06") or ".."."""
    day = (item.datetime or item.common_metadata.start_datetime).date().isoformat()
    start, end = start[:10], end[:10]
    after_start = start in ("", "..") or day[: len(start)] >= start
    before_end = end in ("", "..") or day[: len(end)] <= end
    return after_start and before_end


def search_items(*, settings: SearchSettings) -> pystac.ItemCollection:
    """Search the configured source; raise `SearchError` naming the filters if nothing is found."""
    stac = settings.stac
    aoi = aoi_geometry(settings.grid.aoi)
    season = settings.season
    if "catalog" in stac:
        source = stac["catalog"]
        items = _search_catalog(source, stac["collection"], aoi, season, stac["max_cloud_cover"])
    else:
        source = stac["api"]
        items = _search_api(stac, aoi, season)
    items = _dedupe(items)
    if not items:
        raise SearchError(
            f"no {stac['collection']} items at {source} for AOI bounds {tuple(round(v, 4) for v in aoi.bounds)}, "
            f"{season.start}..{season.end}, cloud cover <= {stac['max_cloud_cover']}%"
        )
    log.info("found %d items from %s to %s", len(items), items[0].datetime.date(), items[-1].datetime.date())
    return pystac.ItemCollection(items)


def save_items(items: pystac.ItemCollection, path) -> None:
    from cropmap.io import write_json

    write_json(path, items.to_dict(transform_hrefs=False))


def search_to_file(*, settings: SearchSettings, out_path) -> pystac.ItemCollection:
    """The `search` step: `search_items`, saved as an ItemCollection (GeoJSON) at `out_path`."""
    items = search_items(settings=settings)
    save_items(items, out_path)
    return items
