"""The classical baseline a user would otherwise run: a random forest on per-pixel monthly medians.

Features: for each calendar month of the season, the median of the composites in that month, per
band (reflectance). It is fitted on consensus-labelled pixels of the same training patches the deep
model reads (`cropmap.patches`), and predicts block by block, so no job holds the area.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from cropmap.conventions import NODATA, REFLECTANCE_FILL, REFLECTANCE_SCALE
from cropmap.errors import DataError, TrainingError
from cropmap.grid import AreaGrid
from cropmap.patches import PatchDataset, PatchStore
from cropmap.settings import BlockSettings, RandomForestSettings

log = logging.getLogger(__name__)

__all__ = ["fit_random_forest", "load_forest", "monthly_medians", "random_forest_block", "random_forest_predict_step",
           "save_forest"]


def monthly_medians(reflectance: np.ndarray, months: np.ndarray) -> np.ndarray:
    """(n_months * C, H, W) float32 features from a (T, C, H, W) int16 cube (reflectance * 10000,
    -9999 no data) whose composites fall in calendar `months` (T,); a month without a valid
    composite takes the pixel's season median."""
    x = np.where(reflectance == REFLECTANCE_FILL, np.nan, reflectance.astype(np.float32) / REFLECTANCE_SCALE)
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


def calendar_months(times: np.ndarray) -> np.ndarray:
    return np.asarray(times, "datetime64[M]").astype(int) % 12 + 1


def fit_random_forest(*, stores: Sequence[PatchStore], settings: RandomForestSettings, threads: int = 1):
    """A random forest fitted on up to `settings.max_samples` consensus-labelled pixels, at most
    64 from each of a seeded draw of the training patches."""
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(settings.seed)
    dataset = PatchDataset(stores) if sum(map(len, stores)) else None
    if dataset is None:
        raise TrainingError("random forest: no training patch in the area (no consensus label)")
    months = calendar_months(dataset.times)
    per_patch = 64
    order = rng.permutation(len(dataset))[: int(np.ceil(settings.max_samples / per_patch))]
    xs, ys = [], []
    for position in order:
        item = dataset[int(position)]
        labelled = np.flatnonzero(item["labels"].ravel() != NODATA)
        if not labelled.size:
            continue
        pick = rng.choice(labelled, size=min(per_patch, labelled.size), replace=False)
        features = monthly_medians(item["reflectance"], months)
        xs.append(features.reshape(features.shape[0], -1)[:, pick].T)
        ys.append(item["labels"].ravel()[pick])
    if not xs or np.unique(np.concatenate(ys)).size < 2:
        raise TrainingError("random forest: the consensus labels hold fewer than two classes")
    x, y = np.concatenate(xs), np.concatenate(ys)
    forest = RandomForestClassifier(n_estimators=settings.trees, class_weight="balanced", n_jobs=threads,
                                    random_state=settings.seed, min_samples_leaf=2)
    forest.fit(x, y)
    log.info("random forest: %d trees on %d labelled pixels of %d patches, %d features", settings.trees, len(y),
             len(xs), x.shape[1])
    return {"forest": forest, "months": months.tolist(), "bands": dataset.bands}


def save_forest(model: dict[str, Any], path) -> None:
    import joblib

    from cropmap.io import atomic_path

    with atomic_path(path) as tmp:
        joblib.dump(model, tmp, compress=3)


def load_forest(path) -> dict[str, Any]:
    """A forest written by `save_forest` (a pickle: load only files this workflow wrote)."""
    import joblib

    return joblib.load(path)


def random_forest_block(*, cube_paths: Sequence[str], model: dict[str, Any], block: AreaGrid) -> np.ndarray:
    """(2, H, W) uint8 of one block, as `cropmap.predict` writes it: class (1 crop, 0 non-crop) and
    the forest's crop probability in percent, 255 where never observed or outside the tiles."""
    from cropmap.predict import classify
    from cropmap.cube import open_cube

    from cropmap.conventions import available_cores

    model["forest"].n_jobs = available_cores()  # this job's cores, not those of the job that fitted it
    tiles = {tile.id: tile for tile in block.tiles}
    out = np.full((2, *block.shape), NODATA, np.uint8)
    for path in cube_paths:
        cube = open_cube(path)
        halo = int(cube.attrs.get("halo_px", 0))
        if halo:
            cube = cube.isel(y=slice(halo, -halo), x=slice(halo, -halo))
        tile_id = str(cube.attrs.get("tile"))
        if tile_id not in tiles:
            raise DataError(f"cube {path} is of tile {tile_id}, which is not in this block")
        if [str(b) for b in cube["band"].values] != list(model["bands"]):
            raise DataError(f"cube {path} has other bands than the forest was fitted on ({model['bands']})")
        feat = monthly_medians(cube["reflectance"].values, calendar_months(cube["time"].values))
        _, h, w = feat.shape
        crop_column = list(model["forest"].classes_).index(1)
        prob = model["forest"].predict_proba(feat.reshape(feat.shape[0], -1).T)[:, crop_column].reshape(h, w)
        r, c = block.offset(tiles[tile_id])
        out[:, r:r + h, c:c + w] = classify(prob.astype(np.float32), cube["never_observed"].values == 0, threshold=0.5)
    return out


def random_forest_predict_step(*, settings: BlockSettings, cube_paths: Sequence[str], model_path, block: str,
                               out_path) -> None:
    """The `random_forest_predict` step: the forest saved at `model_path` on the tile cubes of block `block`."""
    from cropmap.grid import block_by_id
    from cropmap.predict import write_block_prediction

    grid = block_by_id(settings.grid, settings.block_tiles, block)
    out = random_forest_block(cube_paths=cube_paths, model=load_forest(model_path), block=grid)
    write_block_prediction(out_path, out, block=grid)
