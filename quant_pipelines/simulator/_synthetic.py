"""Seeded random-walk bars for tests, benchmarks and demos (no market-data dependency)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from quant_pipelines.marketdata.schema import make_bars


def random_walk_bars(
    n: int,
    *,
    seed: int = 0,
    start: str = "2020-01-01",
    drift: float = 0.0003,
    volatility: float = 0.012,
    freq: str = "D",
) -> pd.DataFrame:
    """Bars of a seeded geometric random walk with regime-like volatility bursts.

    Args:
        n: Number of bars.
        seed: Seed of the generator; the same seed gives identical bars.
        start: First timestamp (UTC).
        drift: Mean log return per bar.
        volatility: Base standard deviation of log returns per bar.
        freq: Bar spacing (pandas frequency).

    Returns:
        A frame in the bar schema with consistent OHLC (low <= open, close <= high).
    """
    rng = np.random.default_rng(seed)
    # Volatility switches between calm and turbulent spells so regime labels vary.
    spell = np.repeat(rng.choice([1.0, 2.2], size=n // 50 + 1, p=[0.7, 0.3]), 50)[:n]
    # A slowly wandering drift gives trends a policy can learn something from.
    trend = np.repeat(rng.normal(0.0, 4 * volatility / 10, size=n // 80 + 1), 80)[:n]
    log_ret = drift + trend + volatility * spell * rng.standard_normal(n)
    close = 100.0 * np.exp(np.cumsum(log_ret))
    gap = volatility * 0.3 * rng.standard_normal(n)
    prev_close = np.concatenate(([100.0], close[:-1]))
    open_ = prev_close * np.exp(gap)
    wick = np.abs(rng.standard_normal((2, n))) * volatility * 0.5
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = rng.integers(1_000, 10_000, size=n).astype(np.float64)
    index = pd.date_range(start, periods=n, freq=freq, tz="UTC")
    return make_bars(index, np.column_stack([open_, high, low, close, volume]))
