"""Causal technical indicators on pandas objects.

Each function takes a price Series (or a bar frame, whose ``close`` is used; ATR and Donchian
use ``high``/``low`` too) and returns a Series or frame on the same index. The value at bar t
uses bars up to and including t only. Warm-up bars are NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from quant_pipelines.signals import kernels as k


def _series(x: pd.Series | pd.DataFrame, column: str = "close") -> pd.Series:
    if isinstance(x, pd.DataFrame):
        if column not in x.columns:
            raise ValueError(f"frame has no {column!r} column; pass a Series or a bar frame")
        return x[column].astype("float64")
    if isinstance(x, pd.Series):
        return x.astype("float64")
    raise TypeError(f"expected a pandas Series or bar DataFrame, got {type(x).__name__}")


def _wrap(values: np.ndarray, like: pd.Series, name: str) -> pd.Series:
    return pd.Series(values, index=like.index, name=name)


def sma(prices: pd.Series | pd.DataFrame, window: int) -> pd.Series:
    """Simple moving average.

    Args:
        prices: Price Series, or a bar frame (its ``close``).
        window: Number of bars.

    Returns:
        The mean of the last ``window`` prices at each bar.
    """
    s = _series(prices)
    return _wrap(k.rolling_mean(s.to_numpy(), window), s, f"sma_{window}")


def ema(prices: pd.Series | pd.DataFrame, span: int) -> pd.Series:
    """Exponential moving average (``alpha = 2 / (span + 1)``, seeded with the first price).

    Args:
        prices: Price Series, or a bar frame (its ``close``).
        span: The EMA span in bars; the first ``span - 1`` values are NaN.

    Returns:
        The EMA at each bar.
    """
    s = _series(prices)
    return _wrap(k.ema(s.to_numpy(), span), s, f"ema_{span}")


def rsi(prices: pd.Series | pd.DataFrame, window: int = 14) -> pd.Series:
    """Wilder's relative strength index, in [0, 100].

    Args:
        prices: Price Series, or a bar frame (its ``close``).
        window: Wilder smoothing length.

    Returns:
        RSI at each bar (NaN until ``window`` price changes exist).
    """
    s = _series(prices)
    return _wrap(k.rsi(s.to_numpy(), window), s, f"rsi_{window}")


def bollinger(
    prices: pd.Series | pd.DataFrame, window: int = 20, *, num_std: float = 2.0
) -> pd.DataFrame:
    """Bollinger bands: moving average plus/minus ``num_std`` rolling standard deviations.

    Args:
        prices: Price Series, or a bar frame (its ``close``).
        window: Window of the mean and the (population, ddof=0) standard deviation.
        num_std: Band width in standard deviations.

    Returns:
        Frame with columns ``mid``, ``upper``, ``lower`` and ``percent_b``
        (``(price - lower) / (upper - lower)``, NaN when the bands are flat).
    """
    s = _series(prices)
    x = s.to_numpy()
    mid = k.rolling_mean(x, window)
    sd = k.rolling_std(x, window)
    upper, lower = mid + num_std * sd, mid - num_std * sd
    width = upper - lower
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(width > 0, (x - lower) / width, np.nan)
    return pd.DataFrame(
        {"mid": mid, "upper": upper, "lower": lower, "percent_b": pct}, index=s.index
    )


def donchian(bars: pd.DataFrame, window: int = 20) -> pd.DataFrame:
    """Donchian channel: highest high and lowest low of the last ``window`` bars (incl. t).

    A breakout rule compares today's close with *yesterday's* channel (``shift(1)``).

    Args:
        bars: Bar frame (``high`` and ``low``).
        window: Number of bars.

    Returns:
        Frame with columns ``upper``, ``lower`` and ``mid``.
    """
    hi = _series(bars, "high").to_numpy()
    lo = _series(bars, "low").to_numpy()
    upper, lower = k.rolling_max(hi, window), k.rolling_min(lo, window)
    return pd.DataFrame(
        {"upper": upper, "lower": lower, "mid": (upper + lower) / 2.0}, index=bars.index
    )


def atr(bars: pd.DataFrame, window: int = 14) -> pd.Series:
    """Wilder's average true range.

    Args:
        bars: Bar frame (``high``, ``low``, ``close``).
        window: Smoothing length.

    Returns:
        ATR at each bar, in price units.
    """
    c = _series(bars, "close")
    values = k.atr(
        _series(bars, "high").to_numpy(), _series(bars, "low").to_numpy(), c.to_numpy(), window
    )
    return _wrap(values, c, f"atr_{window}")


def realized_volatility(
    prices: pd.Series | pd.DataFrame, window: int = 20, *, periods_per_year: float | None = None
) -> pd.Series:
    """Rolling standard deviation (ddof=1) of log returns.

    Args:
        prices: Price Series, or a bar frame (its ``close``).
        window: Number of returns in the window (>= 2).
        periods_per_year: Annualise by its square root when given (e.g. 252).

    Returns:
        Volatility at each bar.
    """
    s = _series(prices)
    values = k.realized_volatility(s.to_numpy(), window, periods_per_year=periods_per_year)
    return _wrap(values, s, f"rvol_{window}")


def momentum(prices: pd.Series | pd.DataFrame, window: int = 20) -> pd.Series:
    """Rate of change over ``window`` bars: ``p_t / p_{t-window} - 1``.

    Args:
        prices: Price Series, or a bar frame (its ``close``).
        window: Look-back in bars.

    Returns:
        Momentum at each bar.
    """
    s = _series(prices)
    return _wrap(k.momentum(s.to_numpy(), window), s, f"mom_{window}")
