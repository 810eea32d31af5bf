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
