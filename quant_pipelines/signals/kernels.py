"""Array-level indicator kernels: 1-D float64 arrays in, 1-D float64 arrays out.

Every kernel is causal: the value at position ``t`` is computed from ``x[: t + 1]`` only, so
appending or changing data after ``t`` never changes it. Warm-up positions (too little history)
are NaN. The Series-level functions in :mod:`quant_pipelines.signals.indicators` and the
strategies' cached indicators both call these, so every consumer reads the same numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def check_window(window: int, *, minimum: int = 1, name: str = "window") -> int:
    """Validate an integer window length.

    Args:
        window: The window (bars).
        minimum: Smallest allowed value.
        name: Parameter name for the error message.

    Returns:
        The window as a Python int.

    Raises:
        ValueError: If the window is not an integer >= ``minimum``.
    """
    if isinstance(window, bool) or int(window) != window or int(window) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {window!r}")
    return int(window)


def rolling_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Simple moving average over the last ``window`` values (NaN during warm-up).

    Finite input uses a cumulative sum of ``x - x[0]`` (a constant series gives an exactly
    constant mean); input with NaN falls back to pandas' rolling mean (NaN where the window holds
    a NaN).
    """
    w = check_window(window)
    n = len(x)
    out = np.full(n, np.nan)
    if n < w:
        return out
    if not np.isfinite(x).all():
        return pd.Series(x, copy=False).rolling(w).mean().to_numpy()
    return rolling_mean_cs(x, np.cumsum(x - x[0]), w)


def rolling_mean_cs(x: np.ndarray, cs: np.ndarray, window: int) -> np.ndarray:
    """:func:`rolling_mean` of finite ``x`` given ``cs = np.cumsum(x - x[0])``.

    Lets a caller share one cumulative sum across many windows; the result is identical.
    """
    w = check_window(window)
    n = len(x)
    out = np.full(n, np.nan)
    if n < w:
        return out
    out[w - 1] = cs[w - 1] / w
    out[w:] = (cs[w:] - cs[:-w]) / w
    out[w - 1 :] += x[0]
    return out


def ewm_mean(x: np.ndarray, *, alpha: float, min_periods: int = 1) -> np.ndarray:
    """Recursive exponential mean ``y_t = alpha * x_t + (1 - alpha) * y_{t-1}``, ``y_0 = x_0``.

    NaN inputs are skipped (the recursion continues from the last value). The first
    ``min_periods - 1`` outputs are NaN.
    """
    return (
        pd.Series(x, copy=False)
        .ewm(alpha=alpha, adjust=False, min_periods=min_periods)
        .mean()
        .to_numpy()
    )


def ema(x: np.ndarray, span: int) -> np.ndarray:
    """Exponential moving average with ``alpha = 2 / (span + 1)``, NaN for the first span-1."""
    s = check_window(span, name="span")
    return ewm_mean(x, alpha=2.0 / (s + 1.0), min_periods=s)


def rolling_std(x: np.ndarray, window: int, *, ddof: int = 0) -> np.ndarray:
    """Rolling standard deviation over the last ``window`` values."""
    w = check_window(window, minimum=ddof + 1)
    return pd.Series(x, copy=False).rolling(w).std(ddof=ddof).to_numpy()


def rolling_max(x: np.ndarray, window: int) -> np.ndarray:
    """Rolling maximum over the last ``window`` values."""
    return pd.Series(x, copy=False).rolling(check_window(window)).max().to_numpy()


def rolling_min(x: np.ndarray, window: int) -> np.ndarray:
    """Rolling minimum over the last ``window`` values."""
    return pd.Series(x, copy=False).rolling(check_window(window)).min().to_numpy()


def rsi(x: np.ndarray, window: int) -> np.ndarray:
    """Wilder's relative strength index in [0, 100] (smoothing ``alpha = 1 / window``).

    100 when there were only gains in the window's memory, 50 when price did not move.
    """
    w = check_window(window)
    out = np.full(len(x), np.nan)
    if len(x) <= w:
        return out
    delta = np.diff(x)
    gain = ewm_mean(np.maximum(delta, 0.0), alpha=1.0 / w, min_periods=w)
    loss = ewm_mean(np.maximum(-delta, 0.0), alpha=1.0 / w, min_periods=w)
    total = gain + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        val = np.where(total > 0.0, 100.0 * gain / total, 50.0)
    val[np.isnan(total)] = np.nan
    out[1:] = val
    return out


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """True range: ``max(high, prev_close) - min(low, prev_close)`` (``high - low`` at t=0)."""
    prev = np.empty_like(close)
    prev[0] = close[0] if len(close) else np.nan
    prev[1:] = close[:-1]
    return np.maximum(high, prev) - np.minimum(low, prev)


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, window: int) -> np.ndarray:
    """Wilder's average true range (``alpha = 1 / window``), NaN for the first window-1."""
    w = check_window(window)
    return ewm_mean(true_range(high, low, close), alpha=1.0 / w, min_periods=w)


def log_returns(x: np.ndarray) -> np.ndarray:
    """``log(x_t / x_{t-1})``, NaN at t=0."""
    out = np.full(len(x), np.nan)
    out[1:] = np.log(x[1:] / x[:-1])
    return out


def realized_volatility(
    x: np.ndarray, window: int, *, periods_per_year: float | None
) -> np.ndarray:
    """Rolling standard deviation (ddof=1) of log returns, annualised when asked.

    Args:
        x: Prices.
        window: Number of returns in the window (>= 2).
        periods_per_year: Multiply by its square root when given.

    Returns:
        Volatility per bar, NaN until ``window`` returns exist.
    """
    w = check_window(window, minimum=2)
    vol = rolling_std(log_returns(x), w, ddof=1)
    return vol * np.sqrt(periods_per_year) if periods_per_year else vol


def momentum(x: np.ndarray, window: int) -> np.ndarray:
    """Rate of change ``x_t / x_{t-window} - 1`` (NaN for the first ``window``)."""
    w = check_window(window)
    out = np.full(len(x), np.nan)
    out[w:] = x[w:] / x[:-w] - 1.0
    return out
