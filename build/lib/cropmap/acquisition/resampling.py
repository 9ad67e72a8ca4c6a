"""Resampling between a tile's grids (10 m and the 20 m bands' own), with the same bilinear kernel
as GDAL, NaN as no data."""

from __future__ import annotations

import numpy as np

from cropmap.acquisition.compositing import in_blocks

__all__ = ["nearest_indices", "pixel_positions", "resample_bilinear"]


def pixel_positions(*, src, dst) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates, in `src` pixels (0 = centre of the first), of the centres of
    `dst`'s pixels. Both grids are north-up in the same CRS."""
    a, b = src.affine, dst.affine
    rows = (b.f + (np.arange(dst.shape[0]) + 0.5) * b.e - a.f) / a.e - 0.5
    cols = (b.c + (np.arange(dst.shape[1]) + 0.5) * b.a - a.c) / a.a - 0.5
    return rows, cols


def nearest_indices(*, src, dst) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = pixel_positions(src=src, dst=dst)
    return (np.clip(np.floor(rows + 0.5), 0, src.shape[0] - 1).astype(np.intp),
            np.clip(np.floor(cols + 0.5), 0, src.shape[1] - 1).astype(np.intp))


def resample_bilinear(values: np.ndarray, *, src, dst) -> np.ndarray:
    """`values` (..., y, x) on GeoBox `src` interpolated bilinearly at the pixel centres of GeoBox `dst`
    (same CRS, north-up). NaN is no data: a value is interpolated from its valid neighbours only."""
    rows, cols = pixel_positions(src=src, dst=dst)
    row_low, row_w = _linear_weights(rows, src.shape[0])
    col_low, col_w = _linear_weights(cols, src.shape[1])
    missing = np.isnan(values)
    holes = missing.any(axis=tuple(range(values.ndim - 2)))
    valid = None  # the weight of each source value, where some are missing
    if holes.any():
        # after gap filling a pixel lacks every date and band or none: then one 2-D weight serves all
        valid = (~holes if (missing == holes).all() else ~missing).astype(np.float32)
        values = np.where(missing, np.float32(0), values)
    out = np.empty((*values.shape[:-2], *dst.shape), np.float32)

    def interpolate(a, r):  # the output rows r of a, interpolated along y, then x
        along_y = _lerp(a, row_low[r], row_w[r][:, None], axis=a.ndim - 2)
        return _lerp(along_y, col_low, col_w, axis=a.ndim - 1)

    def block(r: slice) -> None:
        out[..., r, :] = interpolate(values, r)
        if valid is not None:
            weight = interpolate(valid, r)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[..., r, :] /= weight
            np.copyto(out[..., r, :], np.nan, where=weight <= 1e-6)

    in_blocks(dst.shape[0], block)  # output rows are independent
    return out


def _linear_weights(positions: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(index of the source pixel at or before each position, weight of the one after it)."""
    low = np.clip(np.floor(positions), 0, max(n - 2, 0)).astype(np.intp)
    return low, np.clip(positions - low, 0, 1).astype(np.float32)


def _lerp(a: np.ndarray, low: np.ndarray, weight: np.ndarray, *, axis: int) -> np.ndarray:
    result = np.take(a, low, axis=axis)
    step = np.take(a, np.minimum(low + 1, a.shape[axis] - 1), axis=axis)
    step -= result
    step *= weight
    result += step
    return result
