"""Stages 4-5, learning: the training data, the network, pretraining and training, and the random
forest on monthly medians (`rules/learn.smk`, `rules/forest.smk`).

- `patches`: a block's pretraining and training patch stores, and how patches are drawn.
- `dataset`: dates as days since the season started, and the standardisation of reflectance.
- `model`: the spatio-temporal network (torch).
- `training`: masked pretraining, weakly supervised training (partial cross-entropy and the two
  regularisers), checkpoints.
- `forest`: the random forest a user would otherwise fit (scikit-learn).
"""

from cropmap._exports import lazy_exports

_EXPORTS = {
    "write_block_patches": "patches", "PatchStore": "patches",
    "standardise": "dataset", "date_positions": "dataset",
    "SpatioTemporalNet": "model", "ModelConfig": "model", "pick_device": "model",
    "pretrain": "training", "train": "training", "train_step": "training", "load_checkpoint": "training",
    "save_checkpoint": "training", "masked_mse": "training", "visual_similarity_loss": "training",
    "spatial_aggregation_loss": "training",
    "fit_random_forest": "forest", "monthly_medians": "forest", "random_forest_block": "forest",
    "save_forest": "forest", "load_forest": "forest",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
