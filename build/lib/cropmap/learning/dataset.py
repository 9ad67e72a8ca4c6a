"""From stored reflectance to model input: dates, band statistics, standardisation, batches."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from cropmap.conventions import REFLECTANCE_FILL, REFLECTANCE_SCALE

__all__ = ["band_index", "band_statistics", "date_positions", "season_days", "standardise"]


def season_days(times: np.ndarray, season_start: str) -> np.ndarray:
    """Days from the start of the season to each composite (float32): continuous across New Year,
    unlike the day of the year, so a season from October to June keeps its dates in order."""
    days = np.asarray(times, dtype="datetime64[D]") - np.datetime64(season_start, "D")
    return days.astype(np.float32)


def date_positions(times: np.ndarray, *, season_start: str, encoding: str = "season") -> np.ndarray:
    """What the model reads as each composite's date (float32 days): `season_days`, or the day of
    the year (`encoding="day_of_year"`, which breaks the order of a season across New Year)."""
    if encoding == "day_of_year":
        times = np.asarray(times, dtype="datetime64[D]")
        return ((times - times.astype("datetime64[Y]")).astype(int) + 1).astype(np.float32)
    return season_days(times, season_start)


def band_statistics(dataset, *, patches: int = 64, sample: int = 200_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and std of the clear observations (not the gap-filled values) of up to
    `patches` patches of `dataset` (a `cropmap.patches.PatchDataset`), spread evenly over it;
    `sample` values per band."""
    rng = np.random.default_rng(seed)
    picks = np.unique(np.linspace(0, len(dataset) - 1, min(patches, len(dataset))).round().astype(int))
    values = []
    for position in picks:
        item = dataset[int(position)]
        refl = item["reflectance"]  # (T, C, H, W)
        per_band = refl.transpose(1, 0, 2, 3).reshape(refl.shape[1], -1)
        values.append(per_band[:, item["observed"].reshape(-1) & (per_band[0] != REFLECTANCE_FILL)])
    allv = np.concatenate(values, axis=1)
    if allv.shape[1] == 0:
        raise ValueError("no observed value in the patches")
    if allv.shape[1] > sample:
        allv = allv[:, rng.choice(allv.shape[1], sample, replace=False)]
    allv = allv / REFLECTANCE_SCALE
    return allv.mean(axis=1).astype(np.float32), (allv.std(axis=1) + 1e-4).astype(np.float32)


def standardise(reflectance: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """int16 (..., C, H, W) reflectance * 10000 -> float32 standardised per band, on the tensor's
    device; never-observed values (-9999) become 0, the band's mean."""
    x = (reflectance.float() / REFLECTANCE_SCALE - mean[:, None, None]) / std[:, None, None]
    return x.masked_fill(reflectance == REFLECTANCE_FILL, 0.0)


def band_index(bands: Sequence[str], *names: str) -> int:
    for name in names:
        if name in bands:
            return list(bands).index(name)
    raise KeyError(f"none of the bands {names} is in the cube ({', '.join(bands)})")
