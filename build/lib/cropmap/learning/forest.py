"""The classical baseline a user would otherwise run: a random forest on per-pixel monthly medians.

Features: for each calendar month of the season, the median of the composites in that month, per
band (reflectance). It is fitted as a user's notebook would fit it: a uniform sample of the area's
consensus-labelled pixels (not the deep model's training patches), scikit-learn's defaults but the
number of trees. It predicts block by block, so no job holds the area.
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


def _tile_labels(cube, label_paths: Sequence[str]) -> np.ndarray | None:
    """(H, W) uint8 consensus labels of a (halo-cropped) tile cube, read from the block raster that
    holds it; None when no block holds it."""
    import rasterio
    from rasterio.windows import from_bounds

    xs, ys = cube["x"].values, cube["y"].values
    res = abs(float(xs[1] - xs[0]))
    bounds = (xs.min() - res / 2, ys.min() - res / 2, xs.max() + res / 2, ys.max() + res / 2)
    for path in label_paths:
        with rasterio.open(path) as src:
            left, bottom, right, top = src.bounds
            if bounds[0] >= left - res / 2 and bounds[2] <= right + res / 2 and bounds[1] >= bottom - res / 2 and bounds[3] <= top + res / 2:
                window = from_bounds(*bounds, transform=src.transform).round_offsets().round_lengths()
                return src.read(1, window=window)
    return None


def _halo_cropped(cube):
    halo = int(cube.attrs.get("halo_px", 0))
    return cube.isel(y=slice(halo, -halo), x=slice(halo, -halo)) if halo else cube


def fit_random_forest(*, cube_paths: Sequence[str], label_paths: Sequence[str], settings: RandomForestSettings,
                      threads: int = 1):
    """A random forest as a user would fit one: `settings.trees` trees (scikit-learn's defaults
    otherwise) on monthly medians of a uniform sample of up to `settings.max_samples` consensus
    pixels of the whole area. Each labelled pixel is kept with the same probability, tile by tile,
    so no step holds more than one cube."""
    import rasterio
    from sklearn.ensemble import RandomForestClassifier

    from cropmap.acquisition.cube import open_cube

    rng = np.random.default_rng(settings.seed)
    labelled_total = 0
    for path in label_paths:
        with rasterio.open(path) as src:
            labelled_total += int((src.read(1) != NODATA).sum())
    if not labelled_total:
        raise TrainingError("random forest: no consensus label in the area")
    keep = min(1.0, settings.max_samples / labelled_total)
    xs, ys, tiles, bands, months = [], [], [], None, None
    for path in cube_paths:
        cube = _halo_cropped(open_cube(path))
        labels = _tile_labels(cube, label_paths)
        if labels is None or labels.shape != cube["reflectance"].shape[-2:]:
            raise DataError(f"random forest: no labels of the tile of {path} among the label rasters")
        rows, cols = np.nonzero((labels != NODATA) & (cube["never_observed"].values == 0))
        pick = rng.uniform(size=rows.size) < keep
        if not pick.any():
            continue
        tile_months = calendar_months(cube["time"].values)
        if months is None:
            months, bands = tile_months, [str(b) for b in cube["band"].values]
        cells = cube["reflectance"].values[:, :, rows[pick], cols[pick]][..., None]  # (T, C, n, 1)
        xs.append(monthly_medians(cells, tile_months)[..., 0].T)
        ys.append(labels[rows[pick], cols[pick]])
        tiles.append(np.full(int(pick.sum()), str(cube.attrs.get("tile")), dtype=object))
    if not xs:
        raise TrainingError("random forest: no consensus label on an observed pixel of the area")
    if np.unique(np.concatenate(ys)).size < 2:  # what trees learn from one class: that class everywhere
        log.warning("random forest: the consensus labels hold one class only (%s): the forest predicts it everywhere",
                    "crop" if np.concatenate(ys)[0] == 1 else "non-crop")
    x, y, tiles = np.concatenate(xs), np.concatenate(ys), np.concatenate(tiles)
    if len(y) > settings.max_samples:  # the per-pixel draw overshot: a uniform subset of it
        subset = np.sort(rng.choice(len(y), settings.max_samples, replace=False))
        x, y, tiles = x[subset], y[subset], tiles[subset]
    per_tile = {str(t): int(n) for t, n in zip(*np.unique(tiles, return_counts=True))}
    forest = RandomForestClassifier(n_estimators=settings.trees, n_jobs=threads, random_state=settings.seed)
    forest.fit(x, y)
    log.info("random forest: %d trees on %d of the area's %d consensus pixels, %d features", settings.trees, len(y),
             labelled_total, x.shape[1])
    return {"forest": forest, "months": months.tolist(), "bands": bands, "pixels_per_tile": per_tile}


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
    """(2, H, W) uint8 of one block, as `cropmap.mapping.predict` writes it: class (1 crop, 0 non-crop) and
    the forest's crop probability in percent, 255 where never observed or outside the tiles."""
    from cropmap.mapping.predict import classify
    from cropmap.acquisition.cube import open_cube

    from cropmap.conventions import available_cores

    model["forest"].n_jobs = available_cores()  # this job's cores, not those of the job that fitted it
    tiles = {tile.id: tile for tile in block.tiles}
    out = np.full((2, *block.shape), NODATA, np.uint8)
    for path in cube_paths:
        cube = _halo_cropped(open_cube(path))
        tile_id = str(cube.attrs.get("tile"))
        if tile_id not in tiles:
            raise DataError(f"cube {path} is of tile {tile_id}, which is not in this block")
        if [str(b) for b in cube["band"].values] != list(model["bands"]):
            raise DataError(f"cube {path} has other bands than the forest was fitted on ({model['bands']})")
        feat = monthly_medians(cube["reflectance"].values, calendar_months(cube["time"].values))
        _, h, w = feat.shape
        classes = list(model["forest"].classes_)
        if 1 in classes:
            prob = model["forest"].predict_proba(feat.reshape(feat.shape[0], -1).T)[:, classes.index(1)].reshape(h, w)
        else:  # fitted on non-crop labels only
            prob = np.zeros((h, w))
        r, c = block.offset(tiles[tile_id])
        out[:, r:r + h, c:c + w] = classify(prob.astype(np.float32), cube["never_observed"].values == 0, threshold=0.5)
    return out


def random_forest_predict_step(*, settings: BlockSettings, cube_paths: Sequence[str], model_path, block: str,
                               out_path) -> None:
    """The `random_forest_predict` step: the forest saved at `model_path` on the tile cubes of block `block`."""
    from cropmap.grid import block_by_id
    from cropmap.mapping.predict import write_block_prediction

    grid = block_by_id(settings.grid, settings.block_tiles, block)
    out = random_forest_block(cube_paths=cube_paths, model=load_forest(model_path), block=grid)
    write_block_prediction(out_path, out, block=grid)
