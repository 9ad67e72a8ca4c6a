"""Weak labels from the agreement of land-cover products.

A pixel is labelled crop (1) or non-crop (0) only where every product that has data there agrees
and at least `min_voters` products have data; elsewhere it is unlabelled (255). This is the
unanimous rule of Wang et al. (2024): disagreement marks the low-quality pixels that get no
supervised loss.
"""

from __future__ import annotations

import numpy as np

from cropmap.glc import CROP, NODATA, NONCROP

__all__ = ["consensus_labels", "UNLABELLED"]

UNLABELLED = NODATA


def consensus_labels(products: np.ndarray, *, min_voters: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unanimous consensus of recoded products.

    products: (n_products, y, x) uint8 of 1 / 0 / 255.
    Returns (labels, voters, agreeing), each (y, x) uint8: the label (1, 0 or 255), the number of
    products with data, and the number of products that agree with the majority class.
    """
    products = np.asarray(products)
    voters = (products != NODATA).sum(axis=0)
    crop_votes = (products == CROP).sum(axis=0)
    noncrop_votes = (products == NONCROP).sum(axis=0)
    labels = np.full(products.shape[1:], UNLABELLED, np.uint8)
    enough = voters >= min_voters
    labels[enough & (crop_votes == voters)] = CROP
    labels[enough & (noncrop_votes == voters)] = NONCROP
    agreeing = np.maximum(crop_votes, noncrop_votes)
    return labels, voters.astype(np.uint8), agreeing.astype(np.uint8)
