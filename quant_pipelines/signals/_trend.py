"""The causal drawdown / draw-up trend rule behind :func:`quant_pipelines.signals.regimes`.

It is the causal half of the Lunde–Timmermann bull/bear dating: a turn is *confirmed* once the
price has moved far enough from the running extreme since the last confirmed turn, which needs
no future bar. Thresholds are in units of a robust, causal daily volatility, and a moving-average
filter keeps ordinary pull-backs inside a trend from flipping the label (see ``docs/signals.md``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from quant_pipelines.signals import kernels as k

UP, DOWN, RANGE = 0, 1, 2
"""Trend codes, indexes into :data:`quant_pipelines.signals.regimes.TRENDS`."""


def robust_scale(close: np.ndarray, window: int, *, min_periods: int) -> np.ndarray:
    """Causal "normal" daily volatility: rolling median of ``|log return|`` / 0.6745.

    Where the median is 0 (more than half the returns are exactly zero), the rolling mean of
    ``|r|`` times ``sqrt(pi / 2)`` stands in. NaN until ``min_periods`` returns are available.

    Args:
        close: Closes (finite, > 0).
        window: Returns in the rolling window.
        min_periods: Returns needed before the scale is defined.

    Returns:
        Scale per bar (log-return units).
    """
    absr = pd.Series(np.abs(np.diff(np.log(close), prepend=np.nan)))
    med = absr.rolling(window, min_periods=min_periods).median().to_numpy() / 0.6745
    mean = absr.rolling(window, min_periods=min_periods).mean().to_numpy() * 1.2533
    return np.where(med > 0, med, mean)


def drawdown_trend(
    close: np.ndarray,
    *,
    down_sigmas: float = 5.0,
    up_sigmas: float = 4.0,
    filter_window: int = 50,
    scale_window: int = 250,
    min_periods: int = 20,
) -> np.ndarray:
    """Causal trend codes from confirmed drawdowns and draw-ups (a two-state machine).

    Working in log prices ``x`` with the scale ``s_t`` of :func:`robust_scale` and ``m_t`` the
    simple moving average of the close over ``filter_window`` bars:

    * **down** is confirmed at bar t when ``x_t <= peak - down_sigmas * s_t`` and
      ``close_t < m_t`` (no filter when ``filter_window`` is 0), where ``peak`` is the highest
      ``x`` since the last confirmed up-turn (or since the first bar);
    * **up** is confirmed when ``x_t >= trough + up_sigmas * s_t`` and ``close_t > m_t``, where
      ``trough`` is the lowest ``x`` since the last confirmed down-turn (or the first bar);
    * the state then persists until the opposite rule fires (hysteresis);
    * **range** is the state before the first confirmation (nothing confirmed yet).

    Args:
        close: Closes (finite, > 0).
        down_sigmas: Drawdown that confirms a down-trend, in units of ``s_t``.
        up_sigmas: Draw-up that confirms an up-trend, in units of ``s_t``.
        filter_window: Bars in the moving-average filter (0: no filter).
        scale_window: Returns in the rolling median behind ``s_t``.
        min_periods: Returns needed before ``s_t`` (and any confirmation) exists.

    Returns:
        int8 codes :data:`UP`, :data:`DOWN` or :data:`RANGE` per bar.

    Raises:
        ValueError: For non-positive thresholds or bad windows.
    """
    if not (down_sigmas > 0 and up_sigmas > 0):
        raise ValueError(f"thresholds must be > 0, got {down_sigmas!r} and {up_sigmas!r}")
    filter_window = k.check_window(filter_window, minimum=0, name="filter_window")
    scale_window = k.check_window(scale_window, minimum=2, name="scale_window")
    min_periods = k.check_window(min_periods, name="min_periods")
    n = len(close)
    out = np.full(n, RANGE, dtype=np.int8)
    if n == 0:
        return out
    x = np.log(close)
    s = robust_scale(close, scale_window, min_periods=min(min_periods, scale_window))
    ok = np.isfinite(s) & (s > 0)
    if filter_window:
        ma = k.rolling_mean(np.asarray(close, dtype=np.float64), filter_window)
        below, above = close < ma, close > ma  # NaN compares False: no confirmation in warm-up
    else:
        below = above = np.ones(n, dtype=bool)
    drop_to = np.where(ok, down_sigmas * s, np.inf).tolist()
    rise_to = np.where(ok, up_sigmas * s, np.inf).tolist()
    below, above = below.tolist(), above.tolist()
    xs = x.tolist()
    state, peak, trough = RANGE, xs[0], xs[0]
    codes = [RANGE] * n
    for t in range(n):
        xt = xs[t]
        peak = max(peak, xt)
        trough = min(trough, xt)
        if state != DOWN and below[t] and xt <= peak - drop_to[t]:
            state, trough = DOWN, xt
        elif state != UP and above[t] and xt >= trough + rise_to[t]:
            state, peak = UP, xt
        codes[t] = state
    out[:] = codes
    return out
