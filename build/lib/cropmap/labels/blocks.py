"""Weak labels of a block of tiles: every product recoded on each tile, and their consensus.

One GeoTIFF per block holds the consensus label (band 1), the number of voters (2) and of agreeing
products (3), then each product's crop / non-crop recoding (bands 4...), named in the band
descriptions as `product:<name>`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import from_bounds

from cropmap.labels.consensus import clean_labels, consensus_labels
from cropmap.errors import DataError
from cropmap.conventions import NODATA
from cropmap.labels.products import legend_for, product_on_tile, product_sources
from cropmap.grid import AreaGrid, Tile
from cropmap.io import write_geotiff
from cropmap.settings import ConsensusSettings, LabelsSettings

__all__ = ["BlockRasters", "LABEL_BANDS", "block_labels", "product_band", "labels_step", "read_window", "tile_labels",
           "write_block_labels"]

LABEL_BANDS = ("consensus label (1 crop, 0 non-crop, 255 unlabelled)", "voters", "agreeing")


def product_band(path: str | Path, name: str) -> int:
    """1-based band of product `name` in a block label file."""
    with rasterio.open(path) as src:
        descriptions = list(src.descriptions)
    try:
        return descriptions.index(f"product:{name}") + 1
    except ValueError:
        raise DataError(f"{path} has no band for product {name!r}") from None


def tile_labels(*, tile: Tile, products: Mapping[str, Mapping[str, Any]], consensus: ConsensusSettings) -> np.ndarray:
    """(3 + n_products, H, W) uint8 labels of one tile (band order as in the block file)."""
    recoded = np.stack([
        product_on_tile(product_sources(product, tile), legend_for(product), tile,
                        crop_fraction_threshold=product.get("crop_fraction_threshold", 0.5))
        for product in products.values()])
    weights = [consensus.weights.get(name, 1.0) for name in products]
    labels, voters, agreeing = consensus_labels(
        recoded, min_voters=consensus.min_voters, rule=consensus.rule,
        min_agreement=consensus.min_agreement, weights=weights,
        weighted_threshold=consensus.weighted_threshold)
    labels = clean_labels(labels, erode_px=consensus.erode_px, min_patch_px=consensus.min_patch_px)
    return np.concatenate([np.stack([labels, voters, agreeing]).astype(np.uint8), recoded])


def block_labels(*, block: AreaGrid, products: Mapping[str, Mapping[str, Any]], consensus: ConsensusSettings) -> np.ndarray:
    """Labels of every tile of `block`, pasted on the block's grid (255 outside its tiles)."""
    out = np.full((3 + len(products), *block.shape), NODATA, np.uint8)
    for tile in block.tiles:
        r, c = block.offset(tile)
        out[:, r:r + tile.size, c:c + tile.size] = tile_labels(tile=tile, products=products, consensus=consensus)
    return out


def write_block_labels(path, labels: np.ndarray, *, block: AreaGrid, product_names: Sequence[str]) -> None:
    write_geotiff(path, labels, transform=block.transform, crs=block.crs, nodata=NODATA,
                  descriptions=[*LABEL_BANDS, *(f"product:{name}" for name in product_names)])


def labels_step(*, settings: LabelsSettings, block: str, out_path) -> dict[str, float]:
    """The `labels` step: every product and their consensus on block `block`, written to `out_path`;
    returns the block's tile count, labelled share (of its pixels in the area) and crop share of the labels."""
    from cropmap.grid import block_by_id

    grid = block_by_id(settings.grid, settings.block_tiles, block)
    labels = block_labels(block=grid, products=settings.products, consensus=settings.consensus)
    write_block_labels(out_path, labels, block=grid, product_names=list(settings.products))
    inside, labelled = labels[1] != NODATA, labels[0] != NODATA
    return {"tiles": len(grid.tiles), "labelled_share": float(labelled.sum() / max(inside.sum(), 1)),
            "crop_share": float(np.mean(labels[0][labelled] == 1)) if labelled.any() else 0.0}


class BlockRasters:
    """The block rasters of an area (label or prediction files), found by the bounds of a window.

    Each file's bounds are read once; `read` opens only the file that covers the window."""

    def __init__(self, paths: Sequence[str | Path]):
        self.paths = [str(p) for p in paths]
        self._bounds = []
        for path in self.paths:
            with rasterio.open(path) as src:
                self._bounds.append((tuple(src.bounds), abs(src.transform.a)))

    def covering(self, bounds: tuple[float, float, float, float]) -> str | None:
        for path, (outer, res) in zip(self.paths, self._bounds):
            eps = 1e-6 * res
            if (outer[0] - eps <= bounds[0] and bounds[2] <= outer[2] + eps and outer[1] - eps <= bounds[1]
                    and bounds[3] <= outer[3] + eps):
                return path
        return None

    def read(self, bounds: tuple[float, float, float, float], *, band: int = 1, name: str = "the window") -> np.ndarray:
        """One band of the window `bounds` (left, bottom, right, top in the files' CRS); `name` says
        whose window it is in the error when no file covers it."""
        path = self.covering(bounds)
        if path is None:
            raise DataError(f"no label file covers {name}")
        with rasterio.open(path) as src:
            window = from_bounds(*bounds, transform=src.transform).round_offsets().round_lengths()
            return src.read(band, window=window)


def read_window(paths: Sequence[str | Path], bounds: tuple[float, float, float, float], *, name: str,
                band: int = 1) -> np.ndarray:
    """One band of the window `bounds` (left, bottom, right, top in the files' CRS) from whichever of
    the block files `paths` covers it; `name` says whose window it is in the error."""
    return BlockRasters(paths).read(bounds, band=band, name=name)
