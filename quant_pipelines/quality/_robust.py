"""Exact trailing-window statistics and causal outlier taming. Private to the quality package.

Every statistic at position ``t`` is computed from the values ``x[t - window + 1 : t + 1]``
alone, window by window (NaN skipped, NaN when fewer than ``min_count`` values are finite).
Cumulative-sum or online rolling algorithms give results that differ in the last bits depending
on where the series starts; here a value depends on its window only, so scoring the same bar
with a longer or shorter history in front gives bit-identical features (batch independence).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

MAD_TO_SIGMA = 1.4826
"""Scale factor from the median absolute deviation to a normal standard deviation."""


def _windows(x: np.ndarray, window: int) -> np.ndarray:
    """``(len(x), window)`` view: row ``t`` holds ``x[t - window + 1 : t + 1]`` (NaN-padded)."""
    values = np.asarray(x, dtype="float64")
    padded = np.concatenate([np.full(window - 1, np.nan), values])
    return sliding_window_view(padded, window)


def _reduce(
    x: np.ndarray,
    window: int,
    min_count: int,
    func: Callable[..., np.ndarray],
    rows: np.ndarray | None = None,
    **kwargs: int,
) -> np.ndarray:
    if len(x) == 0:
        return np.zeros(0)
    view = _windows(x, window)
    if rows is not None:  # only these windows (a row's statistic depends on its window alone)
        view = view[rows]
    count = np.isfinite(view).sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows
        out = func(view, axis=1, **kwargs)
    out = np.where(count >= max(min_count, 1), out, np.nan)
    if rows is None:
        return out
    full = np.full(len(x), np.nan)
    full[rows] = out
    return full


def reach(rows: np.ndarray, window: int, n: int) -> np.ndarray:
    """The positions whose values the trailing windows ending at ``rows`` read (sorted)."""
    rows = np.asarray(rows, dtype=np.int64)
    opened = np.bincount(np.maximum(rows - window + 1, 0), minlength=n + 1)
    closed = np.bincount(rows + 1, minlength=n + 1)
    return np.flatnonzero(np.cumsum(opened - closed)[:n] > 0)


def nanmedian_rows(view: np.ndarray, axis: int = 1) -> np.ndarray:
    """``np.nanmedian(view, axis=1)`` of a 2-D array, bit for bit, without its masked arrays.

    NumPy computes the median of rows shorter than 600 through ``np.ma.median``: sort (NaN
    last), take the two middle values of the non-NaN ones (the same one twice for an odd
    count) and halve their sum (added from +0.0, as NumPy's reduction does). This does the
    same arithmetic on plain arrays (NaN for an all-NaN row), about eight times faster on the
    windows used here.
    """
    if axis != 1 or view.ndim != 2 or view.shape[1] >= 600:
        return np.nanmedian(view, axis=axis)
    ordered = np.sort(view, axis=1)
    count = view.shape[1] - np.isnan(view).sum(axis=1)
    high = count // 2
    low = np.where(count % 2 == 1, high, high - 1)
    rows = np.arange(len(view))
    last = max(view.shape[1] - 1, 0)
    with np.errstate(invalid="ignore"):  # inf - inf: NumPy's NaN too
        pair = (0.0 + ordered[rows, np.clip(low, 0, last)]) + ordered[rows, np.clip(high, 0, last)]
    return np.where(count > 0, pair / 2.0, np.nan)


def trailing_median(
    x: np.ndarray,
    window: int,
    *,
    min_count: int | None = None,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Median of each trailing window (``min_count`` defaults to ``window``; ``rows``: only
    at these positions, NaN elsewhere -- the same values there)."""
    mc = window if min_count is None else min_count
    return _reduce(x, window, mc, nanmedian_rows, rows)


def trailing_mean(
    x: np.ndarray,
    window: int,
    *,
    min_count: int | None = None,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Mean of each trailing window (``min_count`` defaults to ``window``; ``rows`` as for
    :func:`trailing_median`)."""
    return _reduce(x, window, window if min_count is None else min_count, np.nanmean, rows)


def trailing_std(
    x: np.ndarray,
    window: int,
    *,
    ddof: int = 0,
    min_count: int | None = None,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Standard deviation of each trailing window (``min_count`` defaults to ``window``;
    ``rows`` as for :func:`trailing_median`)."""
    mc = window if min_count is None else max(min_count, ddof + 1)
    return _reduce(x, window, mc, np.nanstd, rows, ddof=ddof)


def shift(x: np.ndarray, periods: int = 1) -> np.ndarray:
    """``x`` moved ``periods`` positions later, NaN in front."""
    out = np.full(len(x), np.nan)
    if periods < len(x):
        out[periods:] = np.asarray(x, dtype="float64")[: len(x) - periods]
    return out


def clip_outliers(
    x: np.ndarray,
    *,
    window: int = 60,
    k: float = 5.0,
    min_periods: int = 10,
    center: bool = True,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Tame outliers against the values before them (causal).

    A value more than ``k`` robust sigmas (1.4826 MAD) from the trailing median of the
    ``window`` values before it is replaced by the median plus or minus *one* robust sigma, on
    its side: it still counts as a move, but an ordinary one, so a spike (and the reversion
    after it) does not inflate the trailing statistics of the next weeks. The value at ``t``
    depends on ``x[t - 2 * window : t + 1]`` only.

    Args:
        x: Values (NaN allowed; NaN stays NaN).
        window: Trailing window of the median and the MAD.
        k: Outlier distance in robust sigmas.
        min_periods: Values needed before replacing starts.
        center: Measure deviations from the trailing median (False: from zero, for returns).
        rows: Only these positions (sorted), NaN elsewhere: the medians are computed where
            those positions read them, and the values there are the same as without ``rows``.

    Returns:
        The values with outliers replaced.
    """
    values = np.asarray(x, dtype="float64")
    prev = shift(values)
    if center:
        read = None if rows is None else reach(rows, window, len(values))
        mid = trailing_median(prev, window, min_count=min_periods, rows=read)
        dev = np.abs(prev - mid)
    else:
        mid = np.zeros(len(values))
        dev = np.abs(prev)
    scale = MAD_TO_SIGMA * trailing_median(dev, window, min_count=min_periods, rows=rows)
    out = values.copy()
    if rows is not None:
        keep = np.zeros(len(values), dtype=bool)
        keep[rows] = True
        out[~keep] = np.nan
    ok = np.isfinite(mid) & np.isfinite(scale) & (scale > 0) & np.isfinite(out)
    diff = np.where(ok, out - mid, 0.0)
    outlier = ok & (np.abs(diff) > k * np.where(ok, scale, 1.0))
    out[outlier] = mid[outlier] + np.sign(diff[outlier]) * scale[outlier]
    return out


def signed_min(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``sign * min(|a|, |b|)`` where ``a`` and ``b`` agree in sign, else 0.

    Combines a move measured from the previous close with the same move measured from a
    trailing median: a spike scores high on both, the reversion after it on one only.
    """
    same = np.sign(a) == np.sign(b)
    return np.where(same, np.sign(a) * np.minimum(np.abs(a), np.abs(b)), 0.0)
