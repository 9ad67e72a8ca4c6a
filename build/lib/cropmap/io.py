"""File I/O at the edges: atomic writes, GeoTIFF / COG writing, JSON."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.enums import Resampling
from rasterio.windows import Window

__all__ = ["atomic_path", "copy_as_cog", "iter_windows", "read_json", "write_cog_from_blocks", "write_geotiff", "write_json"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds.

    A job killed mid-write leaves a `.partial` file that no step reads, never a half `path`; the
    next write of `path` removes such leftovers.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in path.parent.glob(f".{glob.escape(path.stem)}.*.partial{glob.escape(path.suffix)}"):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.partial{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_geotiff(
    path: str | os.PathLike,
    data: np.ndarray,
    *,
    transform: Affine,
    crs: Any,
    nodata: float | int | None = None,
    descriptions: Sequence[str] | None = None,
    cog: bool = False,
    overview_resampling: str = "nearest",
    tags: dict[str, str] | None = None,
) -> None:
    """Write a (bands, rows, cols) or (rows, cols) array atomically as a tiled, compressed GeoTIFF.

    With `cog=True` the file is a Cloud-Optimized GeoTIFF with internal overviews.
    """
    if data.ndim == 2:
        data = data[np.newaxis]
    count, height, width = data.shape
    profile = {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "count": count,
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "compress": "deflate",
        "predictor": 2 if np.issubdtype(data.dtype, np.integer) else 3,
        "tiled": True,
        "blockxsize": 256 if width >= 256 else 16 * max(1, width // 16),
        "blockysize": 256 if height >= 256 else 16 * max(1, height // 16),
    }
    if profile["blockxsize"] > width or profile["blockysize"] > height or width % 16 or height % 16:
        profile.pop("blockxsize"), profile.pop("blockysize")
        profile["tiled"] = False
    with atomic_path(path) as tmp:
        if not cog:
            _write(tmp, data, profile, descriptions, tags)
            return
        plain = tmp.with_name(tmp.name + ".plain.tif")
        try:
            _write(plain, data, profile, descriptions, tags)
            with rasterio.open(plain, "r+") as dst:
                dst.build_overviews(overview_factors(height, width), Resampling[overview_resampling.lower()])
            rasterio.shutil.copy(
                plain, tmp, driver="COG", compress="DEFLATE", predictor="YES", blocksize=256,
                overviews="FORCE_USE_EXISTING",
            )
        finally:
            plain.unlink(missing_ok=True)


def overview_factors(height: int, width: int, *, smallest: int = 128) -> list[int]:
    """Decimation factors 2, 4, 8, ... until the coarsest level is at most `smallest` pixels
    across (at least one level, so even a small map has an overview)."""
    factors = [2]
    while max(height, width) / factors[-1] > smallest and min(height, width) / factors[-1] >= 2:
        factors.append(factors[-1] * 2)
    return factors


def _write(path, data, profile, descriptions, tags) -> None:
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if descriptions:
            for i, d in enumerate(descriptions, start=1):
                dst.set_band_description(i, d)
        if tags:
            dst.update_tags(**tags)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def iter_windows(height: int, width: int, *, size: int = 2048) -> Iterator[Window]:
    """Windows of at most `size` x `size` px covering a raster, row by row: what a step holds at once."""
    for row in range(0, height, size):
        for col in range(0, width, size):
            yield Window(col, row, min(size, width - col), min(size, height - row))


def _vrt_of_blocks(paths: Sequence[str | os.PathLike], *, grid, band: int, nodata: int, dtype: str = "Byte",
                   tags: dict[str, str] | None = None, description: str | None = None,
                   classes: dict[int, tuple[str, str]] | None = None) -> str:
    """A GDAL VRT (XML) placing one band of each block raster on `grid`'s lattice; no pixel is read."""
    from xml.sax.saxutils import escape

    from pyproj import CRS

    height, width = grid.shape
    left, _, _, top = grid.bounds
    res = grid.resolution
    sources = []
    for path in paths:
        with rasterio.open(path) as src:
            r = round((top - src.transform.f) / res)
            c = round((src.transform.c - left) / res)
            h, w = src.height, src.width
        sources.append(
            f'<SimpleSource><SourceFilename relativeToVRT="0">{escape(str(Path(path).resolve()))}</SourceFilename>'
            f"<SourceBand>{band}</SourceBand>"
            f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/><DstRect xOff="{c}" yOff="{r}" xSize="{w}" ySize="{h}"/>'
            "</SimpleSource>")
    metadata = "".join(f'<MDI key="{escape(k)}">{escape(v)}</MDI>' for k, v in (tags or {}).items())
    palette = ""
    if classes:  # a colour table and category names (value -> (name, hex colour)); other values blank
        values = range(max(classes) + 1)
        entries = [classes.get(v, ("", "000000"))[1] for v in values]
        palette = ("<ColorInterp>Palette</ColorInterp><CategoryNames>"
                   + "".join(f"<Category>{escape(classes.get(v, ('',))[0])}</Category>" for v in values)
                   + "</CategoryNames><ColorTable>"
                   + "".join(f'<Entry c1="{int(c[0:2], 16)}" c2="{int(c[2:4], 16)}" c3="{int(c[4:6], 16)}" c4="255"/>'
                             for c in entries) + "</ColorTable>")
    return (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">'
        f"<SRS>{escape(CRS.from_user_input(grid.crs).to_wkt())}</SRS>"
        f"<GeoTransform>{left!r}, {res!r}, 0.0, {top!r}, 0.0, {-res!r}</GeoTransform>"
        f"<Metadata>{metadata}</Metadata>"
        f'<VRTRasterBand dataType="{dtype}" band="1"><NoDataValue>{nodata}</NoDataValue>'
        f"{f'<Description>{escape(description)}</Description>' if description else ''}{palette}"
        f"{''.join(sources)}</VRTRasterBand></VRTDataset>"
    )


def copy_as_cog(src_path, dst_path, *, overview_resampling: str = "nearest", cache_mb: int = 256) -> None:
    """GDAL's COG driver streams any raster GDAL reads (a VRT, a tiled GeoTIFF) into a COG with
    overviews down to `overview_factors`; memory is its block cache (`cache_mb`), not the raster."""
    with rasterio.open(src_path) as src:
        height, width = src.height, src.width
    with rasterio.Env(GDAL_CACHEMAX=cache_mb, GDAL_NUM_THREADS=1):
        rasterio.shutil.copy(
            src_path, dst_path, driver="COG", compress="DEFLATE", predictor="YES", blocksize=256,
            overview_resampling=overview_resampling.upper(),
            overview_count=len(overview_factors(height, width)), bigtiff="IF_SAFER",
        )


def write_cog_from_blocks(path: str | os.PathLike, block_paths: Sequence[str | os.PathLike], *, grid, band: int,
                          nodata: int = 255, overview_resampling: str = "nearest", tags: dict[str, str] | None = None,
                          description: str | None = None, classes: dict[int, tuple[str, str]] | None = None,
                          cache_mb: int = 256) -> None:
    """One band of the block rasters as one COG with overviews on the area `grid`, atomically.

    GDAL streams it from a VRT of the blocks with the COG driver, so memory is bounded by its block
    cache (`cache_mb`), not by the size of the area; areas without a block are `nodata`. `classes`
    (value -> (name, hex colour)) gives it a colour table and category names; GDAL keeps the names
    (and the band description) in a `<path>.aux.xml` beside the COG, which is written with it.
    """
    vrt = _vrt_of_blocks(block_paths, grid=grid, band=band, nodata=nodata, tags=tags, description=description,
                         classes=classes)
    with atomic_path(path) as tmp:
        vrt_path = tmp.with_name(tmp.name + ".vrt")
        try:
            vrt_path.write_text(vrt)
            copy_as_cog(vrt_path, tmp, overview_resampling=overview_resampling, cache_mb=cache_mb)
            aux = tmp.with_name(tmp.name + ".aux.xml")
            if aux.exists():  # renamed first: a kill between the renames leaves a new sidecar, never a stale one
                os.replace(aux, f"{path}.aux.xml")
        finally:
            vrt_path.unlink(missing_ok=True)
