"""Compositing maths of a tile's time series, pure numpy: which observations are clear, the median of
each composite period, gap filling along time, and the row blocks that spread the work over cores."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from cropmap.acquisition.cloudmask import scl_masked
from cropmap.conventions import available_cores
from cropmap.settings import SeasonSettings

__all__ = ["clear_mask", "composite", "composite_dn", "composite_periods", "fill_gaps", "grown_mask", "in_blocks"]


def composite_periods(season: SeasonSettings, interval_days: int) -> list[tuple[dt.date, dt.date]]:
    """Consecutive [start, end) periods of `interval_days` covering the season (end inclusive)."""
    start = dt.date.fromisoformat(season.start)
    end = dt.date.fromisoformat(season.end) + dt.timedelta(days=1)
    periods = []
    while start < end:
        stop = min(start + dt.timedelta(days=interval_days), end)
        periods.append((start, stop))
        start = stop
    return periods


def clear_mask(scl: np.ndarray, *, masked_classes: Sequence[int], dilation_px: int = 0) -> np.ndarray:
    """True where an observation is clear: SCL not in `masked_classes`, after growing the masked
    area by `dilation_px` pixels in the two image axes (the last two of `scl`; 4-connected steps, as
    `scipy.ndimage.binary_dilation` with a cross)."""
    return ~grown_mask(scl_masked(scl, classes=masked_classes), dilation_px)


def grown_mask(masked: np.ndarray, px: int) -> np.ndarray:
    """`masked` grown by `px` 4-connected steps in its last two axes."""
    for _ in range(max(int(px), 0)):
        grown = masked.copy()
        grown[..., 1:, :] |= masked[..., :-1, :]
        grown[..., :-1, :] |= masked[..., 1:, :]
        grown[..., :, 1:] |= masked[..., :, :-1]
        grown[..., :, :-1] |= masked[..., :, 1:]
        masked = grown
    return masked


def composite(values: np.ndarray, clear: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median of clear observations.

    values: (obs, bands, y, x) float; clear: (obs, y, x) bool.
    Returns (bands, y, x) float32 with NaN where no clear observation, and (y, x) clear counts.
    """
    count = clear.sum(axis=0)
    if values.shape[0] == 0:
        return np.full(values.shape[1:], np.nan, np.float32), count.astype(np.uint8)
    masked = np.where(clear[:, None] & ~np.isnan(values), values, np.inf).astype(np.float32)
    # +inf sorts last, so the valid observations of each pixel come first
    ordered = _sort_observations(masked)  # in place: `masked` is a fresh array
    return _median_of_sorted(ordered, np.isfinite(ordered).sum(axis=0, dtype=np.int16)), \
        np.minimum(count, 255).astype(np.uint8)


def composite_dn(dn: np.ndarray, clear: np.ndarray) -> np.ndarray:
    """`composite` for unsigned integer DNs, whose clear observations have data in every band.

    dn: (obs, bands, y, x) unsigned ints; clear: (obs, y, x) bool.
    Returns the (bands, y, x) float32 median, NaN where no clear observation. Sorting the integers
    moves half the bytes of float32.
    """
    # the type's maximum sorts last, after the clear observations (sorted in place: a fresh array)
    ordered = _sort_observations(np.where(clear[:, None], dn, np.iinfo(dn.dtype).max))
    return _median_of_sorted(ordered, clear.sum(axis=0, dtype=np.int16)[None])


def _median_of_sorted(ordered: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Median of the first `valid` entries along axis 0 of `ordered` (float32, NaN where none).

    A period holds a few observations: one masked copy per possible count beats a fancy-index gather."""
    median = np.full(ordered.shape[1:], np.nan, np.float32)
    for k in range(1, ordered.shape[0] + 1):
        where = valid == k
        if not where.any():
            continue
        low, high = (k - 1) // 2, k // 2
        if low == high:
            np.copyto(median, ordered[low], where=where)
            continue
        middle = ordered[low].astype(np.float32)
        middle += ordered[high]
        middle *= np.float32(0.5)
        np.copyto(median, middle, where=where)
    return median


def _sort_observations(x: np.ndarray) -> np.ndarray:
    """`x` sorted in place along axis 0. A composite period holds a handful of observations: an
    odd-even transposition network of element-wise min / max over whole images is then several
    times faster than `np.sort`, which sorts millions of tiny arrays one by one."""
    n = x.shape[0]
    if n > 8:
        x.sort(axis=0)
    if n > 8 or n < 2:
        return x
    low = np.empty_like(x[0])
    for step in range(n):
        for i in range(step % 2, n - 1, 2):
            np.minimum(x[i], x[i + 1], out=low)
            np.maximum(x[i], x[i + 1], out=x[i + 1])
            x[i] = low
    return x


def fill_gaps(cube: np.ndarray, *, axis: int = 0) -> np.ndarray:
    """Fill NaNs by linear interpolation along `axis` (time); before the first and after the last
    valid value, the nearest valid value is repeated. All-NaN series stay NaN."""
    data = np.moveaxis(np.asarray(cube, dtype=np.float32), axis, 0)
    shape, n = data.shape, data.shape[0]
    flat = np.ascontiguousarray(data.reshape(n, -1))
    filled = flat.copy()
    in_blocks(flat.shape[1], lambda cols: _fill_block(flat[:, cols], filled[:, cols]))
    return np.moveaxis(filled.reshape(shape), 0, axis)


def _fill_block(series: np.ndarray, out: np.ndarray) -> None:
    """`fill_gaps` of (time, n) `series` into `out`, a copy of it: a forward pass keeps the last valid
    value and its step, a backward pass the next ones and interpolates between them."""
    n, m = series.shape
    ok = ~np.isnan(series)
    last_val = np.empty_like(series)
    last_step = np.empty((n, m), np.float32)
    value, step = np.full(m, np.nan, np.float32), np.full(m, np.nan, np.float32)
    for t in range(n):
        np.copyto(value, series[t], where=ok[t])
        np.copyto(step, t, where=ok[t])
        last_val[t], last_step[t] = value, step
    value, step = np.full(m, np.nan, np.float32), np.full(m, np.nan, np.float32)
    weight, result = np.empty(m, np.float32), np.empty(m, np.float32)
    for t in range(n - 1, -1, -1):
        np.copyto(value, series[t], where=ok[t])
        np.copyto(step, t, where=ok[t])
        if ok[t].all():
            continue
        before, before_step = last_val[t], last_step[t]
        with np.errstate(invalid="ignore", divide="ignore"):  # NaN where a side is missing, 0/0 at valid steps
            np.divide(t - before_step, step - before_step, out=weight)
        np.subtract(value, before, out=result)
        result *= weight
        result += before
        np.copyto(result, before, where=np.isnan(step))  # nothing after: repeat the last value
        np.copyto(result, value, where=np.isnan(before_step))  # nothing before: repeat the next
        np.copyto(out[t], result, where=~ok[t])


def in_blocks(n: int, work, *, min_block: int = 64) -> None:
    """`work(block)` for consecutive slices of range(n), one per core: the numpy work of cube
    building releases the GIL, so the blocks run in parallel."""
    cpus = available_cores()
    count = max(1, min(cpus, n // min_block))
    bounds = np.linspace(0, n, count + 1).round().astype(int)
    if count == 1:
        work(slice(0, n))
        return
    with ThreadPoolExecutor(max_workers=count) as pool:
        list(pool.map(work, [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]))
