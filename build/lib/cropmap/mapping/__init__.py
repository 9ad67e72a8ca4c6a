"""Stage 6, mapping: tiled inference with seam-free blending, the COG mosaic, and where the map is
unsure (`rules/predict.smk`).

- `predict`: overlapping windows, cosine blending, a block's prediction, the mosaic of blocks.
- `ensemble`: the network's and the forest's predictions of a block combined (`predict.method`).
- `uncertainty`: the margin to the decision threshold, and the points worth labelling next.
"""

from cropmap._exports import lazy_exports

_EXPORTS = {
    "predict_block": "predict", "predict_step": "predict", "predict_probability": "predict",
    "blend_weights": "predict", "classify": "predict", "mosaic": "predict", "mosaic_step": "predict",
    "write_block_prediction": "predict",
    "combine_predictions": "ensemble", "ensemble_step": "ensemble",
    "uncertainty_percent": "uncertainty", "write_uncertainty": "uncertainty", "suggest_points": "uncertainty",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
