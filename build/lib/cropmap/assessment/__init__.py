"""Stage 7, assessment: the map, the consensus and every product against a reference, and the
area estimate from a labelled sample (`rules/assess.smk`).

- `metrics`: confusion matrices, F1, precision, recall, IoU, OA and kappa, tile by tile.
- `sampling`: the stratified sample of the map and the area estimate with its 95 % interval
  (Olofsson et al. 2014).
"""

from cropmap._exports import lazy_exports

_EXPORTS = {
    "confusion": "metrics", "metrics_from_confusion": "metrics", "binary_metrics": "metrics", "assess": "metrics",
    "assess_area": "metrics", "Reference": "metrics", "reference_from_settings": "metrics",
    "sample_map": "sampling", "draw_sample": "sampling", "estimate_area": "sampling",
    "stratified_estimate": "sampling", "sample_sizes": "sampling",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
