"""The tile grid of a study area.

Tiles are squares of `tile_size` pixels anchored at the origin of the output CRS, so a tile's id
depends only on where it is, not on the AOI: ids stay the same when the AOI grows, and the set of
tiles is known from the config alone (a static DAG).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from cropmap.errors import ConfigError
from cropmap.settings import GridSettings

__all__ = ["AreaGrid", "Tile", "aoi_geometry", "block_by_id", "block_id", "blocks_for_area", "output_crs", "tile_by_id",
           "tiles_for_area", "utm_crs_for"]


@dataclass(frozen=True)
class Tile:
    """One tile of the grid: `size` x `size` pixels of `resolution` metres in `crs`."""

    ix: int
    iy: int
    crs: str
    resolution: float
    size: int

    @property
    def id(self) -> str:
        return f"x{self.ix:04d}y{self.iy:04d}"

    @property
    def extent_m(self) -> float:
        return self.size * self.resolution

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in the tile CRS, metres."""
        e = self.extent_m
        return (self.ix * e, self.iy * e, (self.ix + 1) * e, (self.iy + 1) * e)

    @property
    def transform(self) -> Affine:
        left, _, _, top = self.bounds
        return Affine(self.resolution, 0.0, left, 0.0, -self.resolution, top)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.size, self.size)

    def geobox(self, halo: int = 0):
        """The tile's odc-geo GeoBox, grown by `halo` pixels on every side."""
        from odc.geo.geobox import GeoBox

        t = self.transform * Affine.translation(-halo, -halo)
        return GeoBox((self.size + 2 * halo, self.size + 2 * halo), t, self.crs)


def utm_crs_for(lon: float, lat: float) -> str:
    zone = int(math.floor((lon + 180) / 6)) % 60 + 1
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def aoi_geometry(aoi: dict[str, Any]) -> BaseGeometry:
    """The AOI as a shapely geometry in lon/lat (EPSG:4326)."""
    if "bbox" in aoi:
        geom = box(*aoi["bbox"])
    else:
        path = Path(aoi["file"])
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ConfigError(f"aoi.file: cannot read {path} as GeoJSON ({err})") from None
        features = data.get("features", [data]) if data.get("type") == "FeatureCollection" else [data]
        geoms = [shape(f.get("geometry", f)) for f in features]
        from shapely.ops import unary_union

        geom = unary_union(geoms)
    if geom.is_empty or geom.area == 0 or geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise ConfigError(f"aoi: expected a non-empty polygon, got {geom.geom_type} {'(empty)' if geom.is_empty else ''}")
    return geom


def output_crs(grid: GridSettings) -> str:
    """The tiles' CRS: the configured one, or the UTM zone of the AOI's centre for "auto"."""
    if grid.crs != "auto":
        return CRS.from_user_input(grid.crs).to_string()
    c = aoi_geometry(grid.aoi).centroid
    return utm_crs_for(c.x, c.y)


def aoi_in_crs(grid: GridSettings, crs: str | None = None) -> BaseGeometry:
    crs = crs or output_crs(grid)
    return reproject_geometry(aoi_geometry(grid.aoi).segmentize(0.01), "EPSG:4326", crs)


def reproject_geometry(geom: BaseGeometry, src_crs: str, dst_crs: str) -> BaseGeometry:
    transformer = Transformer.from_crs(src_crs, dst_crs, always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def tiles_for_area(grid: GridSettings) -> list[Tile]:
    """All tiles that intersect the AOI, sorted by id."""
    crs = output_crs(grid)
    aoi = aoi_in_crs(grid, crs)
    res, size = float(grid.resolution), int(grid.tile_size)
    e = res * size
    left, bottom, right, top = aoi.bounds
    tiles = []
    for ix in range(math.floor(left / e), math.ceil(right / e)):
        for iy in range(math.floor(bottom / e), math.ceil(top / e)):
            tile = Tile(ix, iy, crs, res, size)
            if aoi.intersects(box(*tile.bounds)) and not aoi.touches(box(*tile.bounds)):
                tiles.append(tile)
    return sorted(tiles, key=lambda t: t.id)


def block_id(tile: Tile, block_tiles: int) -> str:
    """Id of the block of `block_tiles` x `block_tiles` tiles holding `tile` (anchored like tiles)."""
    return f"bx{tile.ix // block_tiles:04d}y{tile.iy // block_tiles:04d}"


def blocks_for_area(grid: GridSettings, block_tiles: int) -> dict[str, AreaGrid]:
    """The area's tiles grouped in blocks (the unit of the label and prediction jobs), by block id.

    A block's grid covers the bounding box of its tiles that are in the area.
    """
    blocks: dict[str, list[Tile]] = {}
    for tile in tiles_for_area(grid):
        blocks.setdefault(block_id(tile, block_tiles), []).append(tile)
    return {bid: AreaGrid(tuple(tiles)) for bid, tiles in sorted(blocks.items())}


def block_by_id(grid: GridSettings, block_tiles: int, block: str) -> AreaGrid:
    blocks = blocks_for_area(grid, block_tiles)
    if block not in blocks:
        raise ConfigError(f"block {block!r} is not in the area's grid")
    return blocks[block]


def tile_by_id(grid: GridSettings, tile_id: str) -> Tile:
    for tile in tiles_for_area(grid):
        if tile.id == tile_id:
            return tile
    raise ConfigError(f"tile {tile_id!r} is not in the area's grid")


@dataclass(frozen=True)
class AreaGrid:
    """All tiles of an area as one raster: the mosaic grid."""

    tiles: tuple[Tile, ...]

    @cached_property
    def bounds(self) -> tuple[float, float, float, float]:
        b = [t.bounds for t in self.tiles]
        return (min(x[0] for x in b), min(x[1] for x in b), max(x[2] for x in b), max(x[3] for x in b))

    @property
    def crs(self) -> str:
        return self.tiles[0].crs

    @property
    def resolution(self) -> float:
        return self.tiles[0].resolution

    @property
    def transform(self) -> Affine:
        left, _, _, top = self.bounds
        return Affine(self.resolution, 0.0, left, 0.0, -self.resolution, top)

    @property
    def shape(self) -> tuple[int, int]:
        left, bottom, right, top = self.bounds
        return (round((top - bottom) / self.resolution), round((right - left) / self.resolution))

    def offset(self, tile: Tile) -> tuple[int, int]:
        """(row, col) of the tile's top-left pixel in the mosaic."""
        left, _, _, top = self.bounds
        return (round((top - tile.bounds[3]) / self.resolution), round((tile.bounds[0] - left) / self.resolution))
