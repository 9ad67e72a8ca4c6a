"""Tiled inference with overlapping windows blended by a smooth weight, and the area mosaic.

Each window's class probabilities are weighted by a separable raised-cosine window (never exactly
zero, so every pixel is covered) and accumulated; the blended probability is the weighted mean.
Windows that overlap by `overlap` pixels thus fade into each other instead of meeting at a seam.
Memory is bounded by one batch of windows and one tile.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import rasterio
import torch
import xarray as xr
from tqdm import tqdm

from cropmap.conventions import DECISION_THRESHOLD_TAG, NODATA
from cropmap.learning.dataset import standardise
from cropmap.errors import DataError
from cropmap.grid import AreaGrid
from cropmap.io import write_cog_from_blocks, write_geotiff
from cropmap.learning.model import ModelConfig, SpatioTemporalNet, autocast, pick_device
from cropmap.settings import MosaicSettings, PredictSettings

log = logging.getLogger(__name__)

__all__ = ["blend_weights", "classify", "load_model", "mosaic", "mosaic_step", "predict_block", "predict_probability",
           "predict_step", "tile_probability", "window_starts", "write_block_prediction"]



def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows of `window` px every `stride` px covering [0, length)."""
    if length <= window:
        return [0]
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


def blend_weights(window: int, overlap: int) -> np.ndarray:
    """(window, window) weights: 1 in the centre, a raised-cosine ramp over `overlap` px at the
    edges, floored at a small positive value."""
    ramp = np.ones(window, np.float32)
    if overlap > 0:
        edge = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap) + 0.5) / overlap)
        ramp[:overlap] = edge
        ramp[-overlap:] = edge[::-1]
    ramp = np.maximum(ramp, 1e-3)
    return np.outer(ramp, ramp)


def load_model(checkpoint: dict[str, Any], device: torch.device) -> SpatioTemporalNet:
    model = SpatioTemporalNet(ModelConfig(**checkpoint["model_config"]))
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(device).eval()


@functools.cache
def _glibc():
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def keep_freed_memory() -> None:
    """Have glibc's malloc keep large freed blocks in the process instead of handing each back to
    the OS, which faulted every window's temporaries in again (issue 22: 6 M minor page faults and
    more system than user time per tile). A process-wide setting; a no-op without glibc."""
    libc = _glibc()
    if libc is not None:
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 1 << 27)
        libc.mallopt(m_trim_threshold, 1 << 31)


def release_freed_memory() -> None:
    """Hand what malloc keeps back to the OS (between tiles: one tile's peak, not the sum of holes)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@torch.inference_mode()
def predict_probability(
    model: SpatioTemporalNet, x: np.ndarray, doy: np.ndarray, *, window: int, overlap: int, batch_size: int,
    device: torch.device | None = None, progress: bool = True,
) -> np.ndarray:
    """Crop probability (H, W) float32 for a standardised cube x (T, C, H, W)."""
    device = device or next(model.parameters()).device
    keep_freed_memory()
    _, _, h, w = x.shape
    window = min(window, h, w)
    stride = max(window - overlap, 1)
    weights = blend_weights(window, min(overlap, window // 2))
    acc = np.zeros((h, w), np.float64)
    wsum = np.zeros((h, w), np.float64)
    positions = [(r, c) for r in window_starts(h, window, stride) for c in window_starts(w, window, stride)]
    doy_t = torch.from_numpy(np.asarray(doy, np.float32)).to(device)
    mixed_precision, _ = autocast(device)
    for i in tqdm(range(0, len(positions), batch_size), desc="predict", unit="batch", disable=not progress):
        batch = positions[i:i + batch_size]
        xb = torch.from_numpy(np.stack([x[:, :, r:r + window, c:c + window] for r, c in batch])).to(device)
        with mixed_precision:
            logits = model(xb, doy_t.expand(len(batch), -1))
        prob = logits.float().softmax(dim=1)[:, 1].cpu().numpy()
        for (r, c), p in zip(batch, prob):
            acc[r:r + window, c:c + window] += p * weights
            wsum[r:r + window, c:c + window] += weights
    return (acc / wsum).astype(np.float32)


def classify(probability: np.ndarray, valid: np.ndarray, *, threshold: float) -> np.ndarray:
    """(2, H, W) uint8: class (1 crop, 0 non-crop) and probability in percent; 255 = no data."""
    cls = np.where(probability >= threshold, 1, 0).astype(np.uint8)
    pct = np.round(probability * 100).astype(np.uint8)
    cls[~valid] = NODATA
    pct[~valid] = NODATA
    return np.stack([cls, pct])


def mosaic(block_paths: Sequence[str], grid: AreaGrid, *, band: int, out_path, resampling: str,
           tags: dict[str, str] | None = None, description: str | None = None, classes=None) -> None:
    """Mosaic one band of the blocks' rasters into one COG (with overviews) on the area grid, by
    streaming: memory does not grow with the area."""
    write_cog_from_blocks(out_path, block_paths, grid=grid, band=band, nodata=NODATA, overview_resampling=resampling,
                          tags=tags, description=description, classes=classes)


def tile_probability(*, cube: xr.Dataset, model: SpatioTemporalNet, checkpoint: dict[str, Any],
                     settings: PredictSettings) -> tuple[np.ndarray, np.ndarray]:
    """Crop probability (H, W) of one tile cube, its halo cut off, and the mask of observed pixels."""
    from cropmap.learning.dataset import date_positions

    mean, std = checkpoint["band_mean"].numpy(), checkpoint["band_std"].numpy()
    bands = [str(b) for b in cube["band"].values]
    if bands != list(checkpoint["bands"]):
        raise DataError(f"cube of tile {cube.attrs.get('tile')} has bands {bands}, the model was trained on "
                        f"{checkpoint['bands']}")
    x = standardise(torch.from_numpy(cube["reflectance"].values), torch.from_numpy(mean), torch.from_numpy(std)).numpy()
    device = next(model.parameters()).device
    dates = date_positions(cube["time"].values, season_start=settings.season_start, encoding=model.config.date_encoding)
    prob = predict_probability(model, x, dates, window=settings.window,
                               overlap=settings.overlap, batch_size=settings.batch_size, device=device)
    halo = int(cube.attrs.get("halo_px", 0))
    if halo:
        prob = prob[halo:-halo, halo:-halo]
    valid = cube["never_observed"].values[halo:prob.shape[0] + halo, halo:prob.shape[1] + halo] == 0
    return prob, valid


def predict_block(*, cube_paths: Sequence[str], checkpoint: dict[str, Any], block: AreaGrid,
                  settings: PredictSettings, out_path) -> None:
    """Predict each tile cube of `block` and write the block's class and probability (percent) raster."""
    from cropmap.acquisition.cube import open_cube

    model = load_model(checkpoint, pick_device())
    # the setting wins; else the threshold training calibrated (0.5 for checkpoints without one)
    threshold = settings.threshold if settings.threshold is not None else checkpoint.get("threshold", 0.5)
    tiles = {tile.id: tile for tile in block.tiles}
    out = np.full((2, *block.shape), NODATA, np.uint8)
    for path in cube_paths:
        cube = open_cube(path)
        tile_id = str(cube.attrs.get("tile"))
        if tile_id not in tiles:
            raise DataError(f"cube {path} is of tile {tile_id}, which is not in this block")
        prob, valid = tile_probability(cube=cube, model=model, checkpoint=checkpoint, settings=settings)
        r, c = block.offset(tiles[tile_id])
        out[:, r:r + prob.shape[0], c:c + prob.shape[1]] = classify(prob, valid, threshold=threshold)
        del cube, prob, valid
        release_freed_memory()
    write_block_prediction(out_path, out, block=block, threshold=threshold)


def write_block_prediction(path, prediction: np.ndarray, *, block: AreaGrid, threshold: float | None = None) -> None:
    """A block's (2, H, W) uint8 class and probability (percent) raster as one GeoTIFF; the decision
    `threshold` (probability, 0-1) that made the classes goes in its tags."""
    write_geotiff(path, prediction, transform=block.transform, crs=block.crs, nodata=NODATA,
                  descriptions=["cropland class", "cropland probability (%)"],
                  tags={DECISION_THRESHOLD_TAG: f"{threshold:.6g}"} if threshold is not None else None)


def predict_step(*, settings: PredictSettings, cube_paths: Sequence[str], model_path, block: str, out_path) -> None:
    """The `predict` step: the model of checkpoint `model_path` on the tile cubes of block `block`."""
    from cropmap.grid import block_by_id
    from cropmap.learning.training import load_checkpoint

    predict_block(cube_paths=cube_paths, checkpoint=load_checkpoint(model_path), settings=settings,
                  block=block_by_id(settings.grid, settings.block_tiles, block), out_path=out_path)


def mosaic_step(*, settings: MosaicSettings, block_paths: Sequence[str], map_path, probability_path,
                legend_png=None) -> AreaGrid:
    """The `mosaic` step: the blocks' class and probability bands as two COGs on the area grid, the
    class map with its colour table and names; with `legend_png`, QGIS styles and a legend beside them."""
    from cropmap.conventions import CLASSES_TAG, MAP_CLASSES
    from cropmap.grid import tiles_for_area
    from cropmap.reporting.styles import map_styles

    grid = AreaGrid(tuple(tiles_for_area(settings.grid)))
    mosaic(block_paths, grid, band=1, out_path=map_path, resampling="nearest",
           tags={"classes": CLASSES_TAG, "producer": "cropmap"}, description="cropland class",
           classes={value: (name, colour) for value, (name, colour, _) in MAP_CLASSES.items()})
    with rasterio.open(block_paths[0]) as src:
        threshold = src.tags().get(DECISION_THRESHOLD_TAG)
    mosaic(block_paths, grid, band=2, out_path=probability_path, resampling="average",
           tags={"units": "percent", "producer": "cropmap",
                 **({DECISION_THRESHOLD_TAG: threshold} if threshold else {})},
           description="cropland probability (%)")
    if legend_png:
        map_styles(map_path=map_path, probability_path=probability_path, legend_png=legend_png)
    return grid
