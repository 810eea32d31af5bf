"""Tiny deterministic bar frames for the backtest tests (seeded random walk, consistent OHLC)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_bars(
    n: int,
    seed: int = 0,
    *,
    vol: float = 0.02,
    gap_vol: float = 0.005,
    drift: float = 0.0,
    start_price: float = 100.0,
    start: str = "2020-01-01",
) -> pd.DataFrame:
    """Bars in the project's schema: open = previous close x gap, close = open x move."""
    rng = np.random.default_rng(seed)
    gaps = rng.normal(0.0, gap_vol, n)
    moves = rng.normal(drift, vol, n)
    opens = np.empty(n)
    closes = np.empty(n)
    prev = start_price
    for i in range(n):
        opens[i] = prev * np.exp(gaps[i])
        closes[i] = opens[i] * np.exp(moves[i])
        prev = closes[i]
    wick = np.abs(rng.normal(0.0, vol / 2, (2, n)))
    high = np.maximum(opens, closes) * np.exp(wick[0])
    low = np.minimum(opens, closes) * np.exp(-wick[1])
    index = pd.date_range(start, periods=n, freq="D", tz="UTC", name="ts")
    return pd.DataFrame(
        {
            "open": opens,
            "high": high,
            "low": low,
            "close": closes,
            "volume": rng.uniform(1e5, 2e5, n),
        },
        index=index,
    )


def bars_from_prices(opens: list[float], closes: list[float]) -> pd.DataFrame:
    """Bars with the given opens and closes (high/low bracket them), for hand-computed cases."""
    o = np.asarray(opens, dtype=float)
    c = np.asarray(closes, dtype=float)
    index = pd.date_range("2024-01-01", periods=len(o), freq="D", tz="UTC", name="ts")
    return pd.DataFrame(
        {
            "open": o,
            "high": np.maximum(o, c),
            "low": np.minimum(o, c),
            "close": c,
            "volume": np.ones(len(o)),
        },
        index=index,
    )


def perturb_after(bars: pd.DataFrame, t: int, seed: int) -> pd.DataFrame:
    """A copy of ``bars`` whose bars after position ``t`` are replaced by a different walk."""
    other = make_bars(len(bars), seed + 10_000, vol=0.05, start_price=float(bars["close"].iloc[0]))
    out = bars.copy()
    out.iloc[t + 1 :] = other.iloc[t + 1 :].to_numpy()
    return out


def make_trend_bars(
    n: int,
    seed: int = 0,
    *,
    drift: float = 0.004,
    vol: float = 0.01,
    mean_duration: float = 80.0,
    down: float = -1.0,
    start: str = "2000-01-03",
) -> pd.DataFrame:
    """Bars with a planted, tradable edge: intraday moves drift up or down in persistent
    regimes (switching with probability ``1 / mean_duration`` a bar), so trend-following
    parameters shorter than the regimes capture it, while buy-and-hold earns nothing on
    average. ``down`` scales the drift of the other regime (-1: as strong downwards; 0: flat).
    ``drift=0`` gives pure noise with the same volatility."""
    rng = np.random.default_rng(seed)
    switches = rng.random(n) < 1.0 / mean_duration
    sign = np.where(np.cumsum(switches) % 2 == 0, 1.0, down)
    frame = make_bars(n, seed + 1, vol=vol, gap_vol=vol / 4, start=start)
    moves = np.log(frame["close"] / frame["open"]).to_numpy() + drift * sign
    gaps = np.log(frame["open"] / frame["close"].shift(1)).fillna(0.0).to_numpy()
    closes = 100.0 * np.exp(np.cumsum(gaps + moves))
    opens = closes * np.exp(-moves)
    high = np.maximum(opens, closes) * (frame["high"] / frame[["open", "close"]].max(axis=1))
    low = np.minimum(opens, closes) * (frame["low"] / frame[["open", "close"]].min(axis=1))
    index = pd.bdate_range(start, periods=n, tz="UTC", name="ts")
    out = frame.assign(open=opens, high=high.to_numpy(), low=low.to_numpy(), close=closes)
    out.index = index
    return out


def goog_bars() -> pd.DataFrame:
    """Real daily GOOG bars, 2004-08-19 to 2013-03-01 (2,148 sessions), in the project's schema.

    They ship inside the ``backtesting`` package (``backtesting.test.GOOG``): nothing downloads.
    """
    from backtesting.test import GOOG

    bars = GOOG.rename(columns=str.lower).astype(float)
    bars.index = pd.DatetimeIndex(bars.index, name="ts").tz_localize("UTC")
    return bars
