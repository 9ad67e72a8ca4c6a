"""From stored reflectance to model input: dates, band statistics, standardisation, batches."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from cropmap.conventions import REFLECTANCE_FILL, REFLECTANCE_SCALE

__all__ = ["band_index", "band_statistics", "day_of_year", "normalise", "standardise"]


def day_of_year(times: np.ndarray) -> np.ndarray:
    times = np.asarray(times, dtype="datetime64[D]")
    years = times.astype("datetime64[Y]")
    return (times - years).astype(int) + 1


def band_statistics(dataset, *, patches: int = 64, sample: int = 200_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and std of reflectance over the observed values of up to `patches` patches of
    `dataset` (a `cropmap.patches.PatchDataset`), spread evenly over it; `sample` values per band."""
    rng = np.random.default_rng(seed)
    picks = np.unique(np.linspace(0, len(dataset) - 1, min(patches, len(dataset))).round().astype(int))
    values = []
    for position in picks:
        refl = dataset[int(position)]["reflectance"]  # (T, C, H, W)
        per_band = refl.transpose(1, 0, 2, 3).reshape(refl.shape[1], -1)
        values.append(per_band[:, per_band[0] != REFLECTANCE_FILL])
    allv = np.concatenate(values, axis=1)
    if allv.shape[1] == 0:
        raise ValueError("no observed value in the patches")
    if allv.shape[1] > sample:
        allv = allv[:, rng.choice(allv.shape[1], sample, replace=False)]
    allv = allv / REFLECTANCE_SCALE
    return allv.mean(axis=1).astype(np.float32), (allv.std(axis=1) + 1e-4).astype(np.float32)


def normalise(reflectance: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """int16 (..., C, H, W) reflectance * 10000 -> float32 standardised per band (no data -> 0)."""
    x = reflectance.astype(np.float32) / REFLECTANCE_SCALE
    x = np.where(reflectance == REFLECTANCE_FILL, mean[:, None, None], x)
    return (x - mean[:, None, None]) / std[:, None, None]


def standardise(reflectance: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """`normalise` in torch, on the tensor's device: int16 (..., C, H, W) -> float32."""
    x = (reflectance.float() / REFLECTANCE_SCALE - mean[:, None, None]) / std[:, None, None]
    return x.masked_fill(reflectance == REFLECTANCE_FILL, 0.0)


def band_index(bands: Sequence[str], *names: str) -> int:
    for name in names:
        if name in bands:
            return list(bands).index(name)
    raise KeyError(f"none of the bands {names} is in the cube ({', '.join(bands)})")
