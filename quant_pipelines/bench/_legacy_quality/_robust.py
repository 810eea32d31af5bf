"""Causal robust helpers: trailing median/MAD clipping so that one outlier cannot inflate the
trailing statistics that the next bars are compared with. Private to the quality package."""

from __future__ import annotations

import numpy as np
import pandas as pd

MAD_TO_SIGMA = 1.4826
"""Scale factor from the median absolute deviation to a normal standard deviation."""


def trailing_median(x: np.ndarray, window: int, *, min_periods: int | None = None) -> np.ndarray:
    """Median of ``x[t - window + 1 : t + 1]`` (NaN-skipping), NaN before ``min_periods``."""
    mp = window if min_periods is None else min_periods
    return pd.Series(x, copy=False).rolling(window, min_periods=mp).median().to_numpy()


def clip_outliers(
    x: np.ndarray, *, window: int = 60, k: float = 5.0, min_periods: int = 10, center: bool = True
) -> np.ndarray:
    """Tame outliers against the values before them (causal).

    A value more than ``k`` robust sigmas (1.4826 MAD) from the trailing median is replaced by
    the median plus or minus *one* robust sigma, on its side: it still counts as a move, but
    an ordinary one, so a spike (and the reversion after it) does not inflate the trailing
    statistics of the next weeks.

    Args:
        x: Values (NaN allowed; NaN stays NaN).
        window: Trailing window of the median and the MAD.
        k: Outlier distance in robust sigmas.
        min_periods: Values needed before replacing starts.
        center: Measure deviations from the trailing median (False: from zero, for returns).

    Returns:
        The values with outliers replaced.
    """
    s = pd.Series(x, copy=False)
    prev = s.shift(1)
    mid = prev.rolling(window, min_periods=min_periods).median() if center else 0.0 * prev
    dev = (prev - mid).abs() if center else prev.abs()
    scale = MAD_TO_SIGMA * dev.rolling(window, min_periods=min_periods).median()
    mid_v = np.broadcast_to(np.asarray(mid, dtype="float64"), len(s)).copy()
    scale_v = scale.to_numpy()
    out = np.asarray(x, dtype="float64").copy()
    ok = np.isfinite(mid_v) & np.isfinite(scale_v) & (scale_v > 0) & np.isfinite(out)
    dev = np.where(ok, out - mid_v, 0.0)
    outlier = ok & (np.abs(dev) > k * np.where(ok, scale_v, 1.0))
    out[outlier] = mid_v[outlier] + np.sign(dev[outlier]) * scale_v[outlier]
    return out


def signed_min(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``sign * min(|a|, |b|)`` where ``a`` and ``b`` agree in sign, else 0.

    Combines a move measured from the previous close with the same move measured from a
    trailing median: a spike scores high on both, the reversion after it on one only.
    """
    same = np.sign(a) == np.sign(b)
    return np.where(same, np.sign(a) * np.minimum(np.abs(a), np.abs(b)), 0.0)
