"""Hindsight reference regimes that the causal labels are scored against (not causal).

* :func:`bull_bear_dating`: the Lunde–Timmermann (2004) dating of bull and bear markets.
* :func:`volatility_reference`: turbulent when the trailing realised volatility is in the top
  quintile of the series' own distribution.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from quant_pipelines.signals import kernels as k


def _dating_codes(x: list[float], up: float, down: float) -> list[int]:
    """1 = bull, 0 = bear per bar (see :func:`bull_bear_dating`)."""
    n = len(x)
    hi = lo = 0  # positions of the running maximum and minimum before the first turn
    first = 1
    while first < n:
        if x[first] > x[hi]:
            hi = first
        if x[first] < x[lo]:
            lo = first
        if x[first] <= x[hi] * (1.0 - down) or x[first] >= x[lo] * (1.0 + up):
            break
        first += 1
    if first >= n:  # no 20% move at all: one regime, by the sign of the whole move
        return [1 if n and x[-1] >= x[0] else 0] * n
    bull = x[first] >= x[lo] * (1.0 + up)  # the state after the first turn
    last = lo if bull else hi  # the first turning point
    codes = [0 if bull else 1] * (last + 1)
    ext = max(range(last, first + 1), key=lambda i: (x[i], -i) if bull else (-x[i], -i))
    for t in range(first + 1, n):
        if bull:
            if x[t] > x[ext]:
                ext = t
            elif x[t] <= x[ext] * (1.0 - down):  # the peak at ext is confirmed
                codes += [1] * (ext - last)
                last, bull = ext, False
                ext = min(range(last, t + 1), key=lambda i: (x[i], i))
        elif x[t] < x[ext]:
            ext = t
        elif x[t] >= x[ext] * (1.0 + up):  # the trough at ext is confirmed
            codes += [0] * (ext - last)
            last, bull = ext, True
            ext = max(range(last, t + 1), key=lambda i: (x[i], -i))
    return codes + [1 if bull else 0] * (n - 1 - last)


def bull_bear_dating(close: pd.Series, *, up: float = 0.20, down: float = 0.20) -> pd.Series:
    """Bull and bear markets dated with hindsight (Lunde & Timmermann, 2004).

    A peak is a turning point once the close has fallen ``down`` (20%) below it; a trough once
    the close has risen ``up`` (20%) above it. Starting from whichever of the two happens first,
    the rule alternates: in a bull market it tracks the highest close since the last trough and
    confirms it as a peak when a close is ``down`` below it; in a bear market it tracks the
    lowest close since the last peak and confirms it as a trough when a close is ``up`` above it.
    Bars up to and including a peak are bull, bars after it up to and including the next trough
    are bear. Bars after the last turning point keep the state it started; a series without a
    single such move is all bull (or all bear if it ended lower). Ties go to the earlier bar.

    This is a *reference*: the label of a bar depends on later bars (a peak is known as a peak
    only after the fall). The causal labels of :func:`quant_pipelines.signals.regimes` are scored
    against it.

    Args:
        close: Closes in time order (finite, > 0).
        up: Rise from a trough that makes it a turning point (0.20 = 20%).
        down: Fall from a peak that makes it a turning point.

    Returns:
        Series of ``"bull"`` / ``"bear"`` on the index of ``close``.

    Raises:
        ValueError: For thresholds outside (0, 1) or non-positive closes.
    """
    if not (up > 0 and 0 < down < 1):
        raise ValueError(f"up must be > 0 and down in (0, 1), got {up!r} and {down!r}")
    x = np.asarray(close, dtype=np.float64)
    if len(x) and not (np.isfinite(x).all() and x.min() > 0):
        raise ValueError("closes must be finite and > 0")
    codes = np.asarray(_dating_codes(x.tolist(), up, down), dtype=np.int8)
    values = np.array(["bear", "bull"], dtype=object)[codes] if len(x) else np.empty(0, object)
    return pd.Series(values, index=close.index, name="market")


def volatility_reference(close: pd.Series, *, window: int = 21, quantile: float = 0.8) -> pd.Series:
    """Turbulent where the trailing realised volatility is in the series' own top quintile.

    The realised volatility at bar t is the standard deviation (ddof=1) of the last ``window``
    log returns (bars t-window+1..t); the threshold is its ``quantile`` over the whole series
    (hindsight). Bars without a full window are None (not scored).

    Args:
        close: Closes in time order (finite, > 0).
        window: Returns in the trailing window (21 = about one month of sessions).
        quantile: Share of the volatility distribution below the turbulent threshold.

    Returns:
        Series of ``"calm"`` / ``"turbulent"`` / None on the index of ``close``.
    """
    rv = k.realized_volatility(np.asarray(close, dtype=np.float64), window, periods_per_year=None)
    ok = np.isfinite(rv)
    out = np.full(len(rv), None, dtype=object)
    if ok.any():
        threshold = np.quantile(rv[ok], quantile)
        out[ok] = np.where(rv[ok] >= threshold, "turbulent", "calm")
    return pd.Series(out, index=close.index, name="volatility_reference")
