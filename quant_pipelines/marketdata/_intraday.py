"""Synthetic intraday bars derived from the daily path.

Each session is split into bars by a Brownian bridge that starts at the session's daily open and
ends exactly at its daily close, so intraday and daily views of a symbol agree on open and close.
Equity volume follows a U-shaped intraday profile; fx and crypto volume is flat. Bars are
generated one calendar year at a time (cached), each year with its own random stream, so any
sub-range is an exact slice of the same bars.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
import pandas as pd

from quant_pipelines.marketdata._paths import daily_path, symbol_rng
from quant_pipelines.marketdata.calendars import bar_layout
from quant_pipelines.marketdata.universe import Symbol


@dataclasses.dataclass(frozen=True)
class IntradayChunk:
    """One year of intraday bars (arrays are read-only).

    Attributes:
        ts_ns: Bar starts in UTC as int64 nanoseconds.
        values: ``(n, 5)`` OHLCV array.
        day: Position of each bar's session in the daily path.
    """

    ts_ns: np.ndarray
    values: np.ndarray
    day: np.ndarray


def _group_cumsum(x: np.ndarray, group_start: np.ndarray) -> np.ndarray:
    cs = np.cumsum(x)
    base = np.concatenate([[0.0], cs])[group_start]
    return cs - base


@lru_cache(maxsize=128)
def intraday_year(symbol: Symbol, seed: int, step_ns: int, year: int) -> IntradayChunk:
    """Intraday bars of the sessions of one calendar year.

    Args:
        symbol: The symbol.
        seed: Non-negative seed.
        step_ns: Bar length in nanoseconds (less than one day).
        year: Calendar year of the session labels.

    Returns:
        The year's bars, in time order.
    """
    path = daily_path(symbol, seed)
    lo, hi = path.labels.searchsorted([pd.Timestamp(year, 1, 1), pd.Timestamp(year + 1, 1, 1)])
    ts_ns, pos = bar_layout(symbol.calendar, path.labels[lo:hi], pd.Timedelta(step_ns, unit="ns"))
    day = pos + lo
    n = len(ts_ns)
    rng = symbol_rng(symbol, seed, 2, step_ns // 1_000_000_000, year)

    counts = np.bincount(pos, minlength=hi - lo)
    group_start = np.concatenate([[0], np.cumsum(counts)[:-1]])[pos]
    k = np.arange(n) - group_start  # position of the bar within its session
    m = counts[pos].astype(float)  # bars in the session
    o_d, c_d = np.log(path.values[day, 0]), np.log(path.values[day, 3])
    step_sigma = path.sigma[day] / np.sqrt(m)
    walk = _group_cumsum(rng.normal(size=n) * step_sigma, group_start)
    walk_end = walk[group_start + counts[pos] - 1]
    frac = (k + 1) / m
    log_close = o_d + frac * (c_d - o_d) + walk - frac * walk_end
    log_open = np.where(k == 0, o_d, np.concatenate([[0.0], log_close[:-1]]))
    wick = 0.5 * step_sigma * np.abs(rng.normal(size=(2, n)))
    high = np.exp(np.maximum(log_open, log_close) + wick[0])
    low = np.exp(np.minimum(log_open, log_close) - wick[1])

    x = (k + 0.5) / m
    weight = 1.0 + 1.5 * (2 * x - 1) ** 2 if symbol.asset_class == "equity" else np.ones(n)
    weight = weight * rng.lognormal(-(0.25**2) / 2, 0.25, size=n)
    weight_sum = np.bincount(pos, weights=weight, minlength=hi - lo)[pos]
    volume = path.values[day, 4] * weight / weight_sum

    values = np.column_stack([np.exp(log_open), high, low, np.exp(log_close), volume])
    for arr in (ts_ns, values, day):
        arr.flags.writeable = False
    return IntradayChunk(ts_ns, values, day)
