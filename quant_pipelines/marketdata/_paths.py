"""Vectorised generation of synthetic daily price paths with a hidden regime chain.

The path of a symbol starts at :data:`EPOCH` (price ``start_price``) and runs to
:data:`PATH_END`; a request for any sub-range slices this one path, so day-by-day ingestion
matches ingestion of a range exactly.

Model (per session ``t``, log prices):

* a trend regime (``up`` / ``down`` / ``range``) and a volatility regime (``calm`` /
  ``turbulent``), each a Markov chain with geometric dwell times, independent of each other;
* volatility ``sigma_t = sigma0 * m[vol_t] * exp(h_t - s^2)`` where ``h`` is a stationary AR(1)
  log-volatility (clustering on top of the calm/turbulent switch);
* Student-t (5 d.o.f., unit variance) shocks ``z_t``;
* trend sessions drift by ``±TREND_DRIFT * sigma0``; range sessions follow an AR(1) deviation
  around the level where the range began (mean reversion);
* equities gap overnight (open != previous close) with rare jump days; crypto opens at the
  previous close;
* the log close is pulled weakly (AR(1), phi 0.998-0.999) toward a growth line from ``start_price``,
  so 30-year paths stay plausible;
* volume ``∝ (sigma_t / sigma0)^1.2 * exp(0.35 |z_t|)`` times lognormal noise.
"""

from __future__ import annotations

import dataclasses
import zlib
from functools import lru_cache

import numpy as np
import pandas as pd

from quant_pipelines.marketdata.calendars import get_calendar, session_bounds, sessions
from quant_pipelines.marketdata.universe import Symbol

EPOCH = pd.Timestamp("2000-01-03")
"""First session date of every synthetic path."""

PATH_END = pd.Timestamp("2030-12-31")
"""Last session date of every synthetic path."""

TRENDS: tuple[str, ...] = ("up", "down", "range")
VOLATILITIES: tuple[str, ...] = ("calm", "turbulent")

TREND_DRIFT = 0.18
"""Daily drift of a trend regime, in units of the symbol's base daily sigma."""

_TREND_MEAN_DAYS = np.array([60.0, 45.0, 50.0])  # up, down, range
_VOL_MEAN_DAYS = np.array([90.0, 30.0])  # calm, turbulent
_VOL_MULT = np.array([0.7, 1.5])
_RANGE_PHI = 0.9
_LOGVOL_PHI, _LOGVOL_SD = 0.97, 0.25
_PERIODS = {"equity": 252.0, "fx": 260.0, "crypto": 365.0}
_GAP_FRAC = {"equity": 0.35, "fx": 0.05, "crypto": 0.0}
_JUMP_PROB = {"equity": 1 / 63, "fx": 1 / 250, "crypto": 1 / 120}
_T_DOF = 5.0
_LEVEL_PHI = {"equity": 0.999, "fx": 0.999, "crypto": 0.998}
_GROWTH = {"equity": 0.06, "fx": 0.0, "crypto": 0.05}  # annual log growth of the level line


@dataclasses.dataclass(frozen=True)
class DailyPath:
    """A symbol's full synthetic daily path (arrays are read-only).

    Attributes:
        labels: Tz-naive session labels.
        ts_ns: Session opens in UTC as int64 nanoseconds.
        values: ``(n, 5)`` OHLCV array.
        trend: Trend regime code per session (index into :data:`TRENDS`).
        vol: Volatility regime code per session (index into :data:`VOLATILITIES`).
        sigma: Daily log-return volatility per session.
    """

    labels: pd.DatetimeIndex
    ts_ns: np.ndarray
    values: np.ndarray
    trend: np.ndarray
    vol: np.ndarray
    sigma: np.ndarray


def symbol_rng(symbol: Symbol, seed: int, *streams: int) -> np.random.Generator:
    """A generator keyed by symbol name, seed and stream ids (stable across processes).

    Args:
        symbol: The symbol; only its name enters the key.
        seed: Non-negative user seed.
        *streams: Extra non-negative integers separating independent uses.

    Returns:
        A fresh PCG64 generator.
    """
    key = zlib.crc32(symbol.name.encode("utf-8"))
    return np.random.default_rng([seed, key, *streams])


def markov_states(rng: np.random.Generator, n: int, mean_days: np.ndarray) -> np.ndarray:
    """A Markov chain of ``n`` steps with geometric dwell times and uniform switches.

    Args:
        rng: Random generator.
        n: Number of steps.
        mean_days: Expected dwell time of each state.

    Returns:
        int8 array of state codes.
    """
    k = len(mean_days)
    jumps = rng.integers(1, k, size=n)  # never "switch" to the same state
    seg_states = (rng.integers(0, k) + np.concatenate([[0], np.cumsum(jumps[1:])])) % k
    durations = rng.geometric(1.0 / mean_days[seg_states])  # n segments of >= 1 step each
    return np.repeat(seg_states, durations)[:n].astype(np.int8)


def ar1(innovations: np.ndarray, phi: float, *, burn_in: int = 0) -> np.ndarray:
    """Apply ``x_t = phi * x_{t-1} + e_t`` with a truncated convolution (no Python loop).

    Args:
        innovations: ``e``; the first ``burn_in`` values only warm the process up.
        phi: Persistence in ``[0, 1)``.
        burn_in: Leading innovations dropped from the output.

    Returns:
        ``x`` for the innovations after the burn-in.
    """
    n = len(innovations)
    taps = min(int(np.ceil(np.log(1e-12) / np.log(phi))) if phi > 0 else 1, n)
    kernel = phi ** np.arange(taps)
    if taps <= 1024:
        return np.convolve(innovations, kernel)[burn_in:n]
    size = 1 << int(np.ceil(np.log2(n + taps)))
    spectrum = np.fft.rfft(innovations, size) * np.fft.rfft(kernel, size)
    return np.fft.irfft(spectrum, size)[burn_in:n]


def _generate(symbol: Symbol, seed: int) -> DailyPath:
    labels = sessions(symbol.calendar, EPOCH, PATH_END)
    opens, _ = session_bounds(symbol.calendar, labels)
    n = len(labels)
    rng = symbol_rng(symbol, seed, 1)
    cls = symbol.asset_class
    sigma0 = symbol.annual_vol / np.sqrt(_PERIODS[cls])

    trend = markov_states(rng, n, _TREND_MEAN_DAYS)
    vol = markov_states(rng, n, _VOL_MEAN_DAYS)
    burn = 300
    e_h = rng.normal(0.0, _LOGVOL_SD * np.sqrt(1 - _LOGVOL_PHI**2), size=n + burn)
    h = ar1(e_h, _LOGVOL_PHI, burn_in=burn)
    sigma = sigma0 * _VOL_MULT[vol] * np.exp(h - _LOGVOL_SD**2)

    z = rng.standard_t(_T_DOF, size=n) * np.sqrt((_T_DOF - 2) / _T_DOF)
    shock = sigma * z
    drift = np.select([trend == 0, trend == 1], [TREND_DRIFT, -TREND_DRIFT], 0.0) * sigma0
    in_range = trend == 2
    dev = ar1(np.where(in_range, shock, 0.0), _RANGE_PHI)
    dev_prev = np.concatenate([[0.0], dev[:-1]])
    ret = np.where(in_range, dev - dev_prev, drift + shock)

    gap = rng.normal(0.0, 1.0, size=n) * sigma * _GAP_FRAC[cls]
    jumps = (rng.random(n) < _JUMP_PROB[cls]) * rng.normal(0.0, 3.0 * sigma0, size=n)
    gap = gap + jumps if cls == "equity" else gap
    ret = ret + jumps
    ret[0] = 0.0
    # A weak pull toward a growth line keeps 30-year paths in a plausible price range.
    growth = _GROWTH[cls] / _PERIODS[cls] * np.arange(n)
    log_close = np.log(symbol.start_price) + growth + ar1(ret, _LEVEL_PHI[cls])
    prev_close = np.concatenate([[np.log(symbol.start_price)], log_close[:-1]])
    log_open = prev_close + gap
    if cls != "equity":
        log_open[0] = prev_close[0]
    wick = 0.5 * sigma * np.abs(rng.normal(size=(2, n)))
    high = np.exp(np.maximum(log_open, log_close) + wick[0])
    low = np.exp(np.minimum(log_open, log_close) - wick[1])
    noise = rng.lognormal(-(0.3**2) / 2, 0.3, size=n)
    volume = symbol.avg_volume * (sigma / sigma0) ** 1.2 * np.exp(0.35 * (np.abs(z) - 0.8)) * noise

    values = np.column_stack([np.exp(log_open), high, low, np.exp(log_close), volume])
    for arr in (values, trend, vol, sigma):
        arr.flags.writeable = False
    return DailyPath(labels, opens.asi8.copy(), values, trend, vol, sigma)


@lru_cache(maxsize=64)
def daily_path(symbol: Symbol, seed: int) -> DailyPath:
    """The cached full daily path of a symbol (see module docstring for the model).

    Args:
        symbol: The symbol (its calendar and generation params are used).
        seed: Non-negative seed.

    Returns:
        The path from :data:`EPOCH` to :data:`PATH_END`.
    """
    get_calendar(symbol.calendar)  # fail early on an unknown calendar
    return _generate(symbol, seed)
