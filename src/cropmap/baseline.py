"""The classical baseline a user would otherwise run: a random forest on per-pixel monthly medians.

Features: for each calendar month of the season, the median of the tile cube's composites in that
month, per band (reflectance); trained on the same consensus labels as the deep model.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from cropmap.dataset import TileArrays
from cropmap.errors import TrainingError
from cropmap.grid import AreaGrid

log = logging.getLogger(__name__)

__all__ = ["monthly_medians", "random_forest_map"]


def monthly_medians(reflectance: np.ndarray, months: np.ndarray) -> np.ndarray:
    """(n_months * C, H, W) float32 features from a (T, C, H, W) int16 cube (reflectance * 10000,
    -9999 no data) whose composites fall in calendar `months` (T,); a month without a valid
    composite takes the pixel's season median."""
    x = np.where(reflectance == -9999, np.nan, reflectance.astype(np.float32) / 10000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        season = np.nanmedian(x, axis=0)
    features = []
    for month in np.unique(months):
        sel = x[months == month]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels of the month
            med = np.nanmedian(sel, axis=0)
        features.append(np.where(np.isnan(med), season, med))
    out = np.concatenate(features).astype(np.float32)
    return np.nan_to_num(out, nan=0.0)


def random_forest_map(*, tiles: Sequence[TileArrays], grid: AreaGrid, settings: dict[str, Any],
                      threads: int = 1) -> np.ndarray:
    """Class map (uint8 1 crop, 0 non-crop, 255 never observed) of the area grid from a random forest
    trained on up to `settings["max_samples"]` consensus-labelled pixels of all tiles."""
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(settings["seed"])
    features = [monthly_medians(t.reflectance, t.month) for t in tiles]
    xs, ys = [], []
    for tile, feat in zip(tiles, features, strict=True):
        labelled = np.isin(tile.labels, (0, 1)) & tile.valid
        xs.append(feat[:, labelled].T)
        ys.append(tile.labels[labelled])
    x, y = np.concatenate(xs), np.concatenate(ys)
    if x.shape[0] == 0 or np.unique(y).size < 2:
        raise TrainingError("random forest: the consensus labels hold fewer than two classes")
    pick = rng.choice(x.shape[0], size=min(settings["max_samples"], x.shape[0]), replace=False)
    forest = RandomForestClassifier(n_estimators=settings["trees"], class_weight="balanced", n_jobs=threads,
                                    random_state=settings["seed"], min_samples_leaf=2)
    forest.fit(x[pick], y[pick])
    log.info("random forest: %d trees on %d labelled pixels, %d features", settings["trees"], pick.size, x.shape[1])
    out = np.full(grid.shape, 255, np.uint8)
    by_id = {t.id: t for t in grid.tiles}
    for tile, feat in zip(tiles, features, strict=True):
        _, h, w = feat.shape
        cls = forest.predict(feat.reshape(feat.shape[0], -1).T).reshape(h, w).astype(np.uint8)
        cls[~tile.valid] = 255
        r, c = grid.offset(by_id[tile.tile_id])
        out[r:r + h, c:c + w] = cls
    return out
