"""Tile cubes in memory, normalisation, and random patches for training."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cropmap.sits import REFLECTANCE_SCALE, open_cube

__all__ = ["TileArrays", "load_tiles", "band_statistics", "normalise", "day_of_year", "band_index"]


@dataclass
class TileArrays:
    """One tile's reflectance (T, C, H, W) int16 (reflectance * 10000), its dates and labels."""

    tile_id: str
    reflectance: np.ndarray
    doy: np.ndarray  # (T,) day of year of each composite
    bands: list[str]
    valid: np.ndarray  # (H, W) bool: observed at least once
    labels: np.ndarray | None = None  # (H, W) uint8 1 / 0 / 255
    month: np.ndarray | None = None  # (T,) calendar month (1-12) of each composite


def day_of_year(times: np.ndarray) -> np.ndarray:
    times = np.asarray(times, dtype="datetime64[D]")
    years = times.astype("datetime64[Y]")
    return (times - years).astype(int) + 1


def load_tiles(cube_paths: Sequence[str], label_paths: Sequence[str] | None = None) -> list[TileArrays]:
    """Each tile cube (without its halo) and, given the blocks' label files, its consensus labels."""
    from cropmap.labels import read_window

    tiles = []
    for path in cube_paths:
        cube = open_cube(path)
        halo = int(cube.attrs.get("halo_px", 0))
        if halo:  # labels and training patches are the tile itself; the halo is for inference
            cube = cube.isel(y=slice(halo, -halo), x=slice(halo, -halo))
        refl = cube["reflectance"].values
        labels = None
        if label_paths is not None:
            labels = read_window(label_paths, cube.rio.bounds(), name=str(cube.attrs.get("tile", path)))
        times = cube["time"].values
        tiles.append(TileArrays(
            tile_id=str(cube.attrs.get("tile", path)), reflectance=refl, doy=day_of_year(times),
            bands=[str(b) for b in cube["band"].values], valid=cube["never_observed"].values == 0,
            month=times.astype("datetime64[M]").astype(int) % 12 + 1, labels=labels,
        ))
    return tiles


def band_statistics(tiles: Sequence[TileArrays], *, sample: int = 200_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and std of reflectance over observed pixels of all tiles (a random sample)."""
    rng = np.random.default_rng(seed)
    values = []
    for tile in tiles:
        t, c, h, w = tile.reflectance.shape
        ys, xs = np.nonzero(tile.valid)
        if ys.size == 0:
            continue
        pick = rng.integers(0, ys.size, size=min(sample // max(len(tiles), 1), ys.size))
        sel = tile.reflectance[:, :, ys[pick], xs[pick]]  # (T, C, n)
        values.append(sel.transpose(1, 0, 2).reshape(c, -1) / REFLECTANCE_SCALE)
    allv = np.concatenate(values, axis=1)
    return allv.mean(axis=1).astype(np.float32), (allv.std(axis=1) + 1e-4).astype(np.float32)


def normalise(reflectance: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """int16 (..., C, H, W) reflectance * 10000 -> float32 standardised per band."""
    x = reflectance.astype(np.float32) / REFLECTANCE_SCALE
    x = np.where(reflectance == -9999, mean[:, None, None], x)
    return (x - mean[:, None, None]) / std[:, None, None]


def band_index(bands: Sequence[str], *names: str) -> int:
    for name in names:
        if name in bands:
            return list(bands).index(name)
    raise KeyError(f"none of the bands {names} is in the cube ({', '.join(bands)})")


def sample_patches(
    tiles: Sequence[TileArrays], *, size: int, count: int, rng: np.random.Generator,
    rows: tuple[float, float] = (0.0, 1.0),
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray | None]]:
    """`count` random (T, C, size, size) patches; `rows` limits them to a band of each tile's rows
    (fractions of its height), which keeps a spatial block out for validation."""
    xs, doys, labels = [], [], []
    for _ in range(count):
        tile = tiles[rng.integers(len(tiles))]
        _, _, h, w = tile.reflectance.shape
        r0, r1 = int(rows[0] * h), int(rows[1] * h) - size
        y = rng.integers(r0, max(r0, r1) + 1)
        x = rng.integers(0, w - size + 1)
        xs.append(tile.reflectance[:, :, y:y + size, x:x + size])
        doys.append(tile.doy)
        labels.append(None if tile.labels is None else tile.labels[y:y + size, x:x + size])
    return xs, doys, labels


def to_batch(patches, doys, mean, std, device) -> tuple[torch.Tensor, torch.Tensor]:
    x = np.stack([normalise(p, mean, std) for p in patches])
    return torch.from_numpy(x).to(device), torch.from_numpy(np.stack(doys).astype(np.float32)).to(device)
