"""The network and the forest as partners (`predict.method: ensemble`): a block's crop probability
is the weighted mean of the two, crop where it is at least one half.

The two err in different places: the network follows the consensus' errors less, the trees carry
"crop" further to crops the consensus leaves unlabelled (docs: results). Both block predictions
hold the class and the crop probability in percent (`cropmap.mapping.predict.write_block_prediction`).
"""

from __future__ import annotations

import numpy as np
import rasterio

from cropmap.conventions import NODATA
from cropmap.errors import DataError
from cropmap.settings import EnsembleSettings

__all__ = ["ENSEMBLE_THRESHOLD", "combine_predictions", "ensemble_step"]

ENSEMBLE_THRESHOLD = 0.5


def combine_predictions(network: np.ndarray, forest: np.ndarray, *, network_weight: float) -> np.ndarray:
    """(2, H, W) uint8 class and crop probability (percent) from two block predictions of the same
    shape (class, percent; `NODATA` where not predicted): the probability is `network_weight` x the
    network's + (1 - `network_weight`) x the forest's, rounded; crop where it is at least 50 %; no
    data where either has none."""
    if network.shape != forest.shape:
        raise DataError(f"ensemble: the network's block is {network.shape[1:]} px, the forest's {forest.shape[1:]}")
    valid = (network[1] != NODATA) & (forest[1] != NODATA)
    mean = network_weight * network[1].astype(np.float32) + (1 - network_weight) * forest[1].astype(np.float32)
    out = np.full(network.shape, NODATA, np.uint8)
    out[0][valid] = mean[valid] >= 100 * ENSEMBLE_THRESHOLD
    out[1][valid] = np.rint(mean[valid]).astype(np.uint8)
    return out


def ensemble_step(*, settings: EnsembleSettings, network_path, forest_path, block: str, out_path) -> None:
    """The `ensemble` step: the block predictions of the network and of the forest combined into one."""
    from cropmap.grid import block_by_id
    from cropmap.mapping.predict import write_block_prediction

    with rasterio.open(network_path) as src:
        network = src.read((1, 2))
    with rasterio.open(forest_path) as src:
        forest = src.read((1, 2))
    write_block_prediction(out_path, combine_predictions(network, forest, network_weight=settings.network_weight),
                           block=block_by_id(settings.grid, settings.block_tiles, block), threshold=ENSEMBLE_THRESHOLD)
