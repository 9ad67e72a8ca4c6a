"""Weak labels from the agreement of land-cover products.

The method's rule (Wang et al. 2024) is unanimous: a pixel is labelled crop (1) or non-crop (0)
only where every product with data there agrees, elsewhere it is unlabelled (255) and gets no
supervised loss. Two relaxations are offered for areas where products rarely all agree:
`k_of_n` (at least `min_agreement` products agree and none of more products disagrees) and
`weighted` (the weighted crop share of the voters is at least `weighted_threshold`, or at most
1 - threshold for non-crop). Products without data at a pixel do not vote, and at least
`min_voters` must vote. Labels can then be eroded away from class borders (mixed pixels) and
patches smaller than `min_patch_px` dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from cropmap.conventions import CROP, NODATA, NONCROP

__all__ = ["consensus_labels", "clean_labels", "RULES"]

RULES = ("unanimous", "k_of_n", "weighted")


def consensus_labels(
    products: np.ndarray, *, min_voters: int, rule: str = "unanimous", min_agreement: int = 2,
    weights: Sequence[float] | None = None, weighted_threshold: float = 0.75,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Consensus of recoded products.

    products: (n_products, y, x) uint8 of 1 / 0 / 255.
    Returns (labels, voters, agreeing), each (y, x) uint8: the label (1, 0 or 255), the number of
    products with data, and the number of products that agree with the majority class.
    """
    products = np.asarray(products)
    has_data = products != NODATA
    voters = has_data.sum(axis=0)
    crop_votes = (products == CROP).sum(axis=0)
    noncrop_votes = (products == NONCROP).sum(axis=0)
    enough = voters >= min_voters
    if rule == "unanimous":
        is_crop = crop_votes == voters
        is_noncrop = noncrop_votes == voters
    elif rule == "k_of_n":
        is_crop = (crop_votes >= min_agreement) & (crop_votes > noncrop_votes)
        is_noncrop = (noncrop_votes >= min_agreement) & (noncrop_votes > crop_votes)
    elif rule == "weighted":
        w = np.ones(len(products)) if weights is None else np.asarray(weights, float)
        w = w.reshape(-1, *([1] * (products.ndim - 1)))
        total = (w * has_data).sum(axis=0)
        share = np.divide((w * (products == CROP)).sum(axis=0), total, out=np.zeros(total.shape), where=total > 0)
        is_crop = share >= weighted_threshold
        is_noncrop = share <= 1 - weighted_threshold
    else:
        raise ValueError(f"unknown consensus rule {rule!r} (expected one of {RULES})")
    labels = np.full(products.shape[1:], NODATA, np.uint8)
    labels[enough & is_crop] = CROP
    labels[enough & is_noncrop & ~is_crop] = NONCROP
    agreeing = np.maximum(crop_votes, noncrop_votes)
    return labels, voters.astype(np.uint8), agreeing.astype(np.uint8)


def clean_labels(labels: np.ndarray, *, erode_px: int = 0, min_patch_px: int = 0) -> np.ndarray:
    """Drop labels within `erode_px` of a different label or of unlabelled pixels, and labelled
    patches (4-connected, per class) smaller than `min_patch_px`."""
    out = labels.copy()
    for cls in (CROP, NONCROP):
        mask = labels == cls
        keep = mask
        if erode_px > 0:
            keep = ndimage.binary_erosion(mask, iterations=erode_px, border_value=1)
        if min_patch_px > 1:
            lab, n = ndimage.label(keep)
            if n:
                sizes = np.bincount(lab.ravel())
                small = sizes < min_patch_px
                small[0] = False
                keep = keep & ~small[lab]
        out[mask & ~keep] = NODATA
    return out
