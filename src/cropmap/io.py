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

__all__ = ["atomic_path", "write_geotiff", "write_json", "read_json"]


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


def read_mosaic(paths, *, grid, band: int = 1, nodata: int = 255) -> np.ndarray:
    """Paste one band of tile rasters (on `grid`'s pixel lattice) into the area grid's array."""
    out = np.full(grid.shape, nodata, np.uint8)
    left, _, _, top = grid.bounds
    for path in paths:
        with rasterio.open(path) as src:
            r = round((top - src.transform.f) / grid.resolution)
            c = round((src.transform.c - left) / grid.resolution)
            out[r:r + src.height, c:c + src.width] = src.read(band)
    return out
