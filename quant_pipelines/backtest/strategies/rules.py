"""The built-in strategies: trend following, breakout and mean reversion."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from quant_pipelines.backtest.space import (
    Constraint,
    FloatParam,
    IntParam,
    SearchSpace,
)
from quant_pipelines.backtest.strategies._base import Strategy, hold, register_strategy, side
from quant_pipelines.backtest.strategies._cache import IndicatorCache


class SmaCrossover(Strategy):
    """Long while the fast SMA is above the slow SMA (short below, if ``allow_short``)."""

    name = "sma_crossover"
    family = "trend"
    description = "fast/slow simple moving-average crossover"

    def default_params(self) -> dict[str, Any]:
        return {"fast": 10, "slow": 50, "allow_short": False}

    def search_space(self) -> SearchSpace:
        return SearchSpace(
            (IntParam("fast", 2, 100), IntParam("slow", 10, 300)),
            (Constraint("fast", "<", "slow"),),
        )

    def _pair(self, cache: IndicatorCache, fast: int, slow: int) -> tuple[np.ndarray, np.ndarray]:
        return cache.sma(fast), cache.sma(slow)

    def targets(self, cache: IndicatorCache, **p: Any) -> np.ndarray:
        f, s = self._pair(cache, p["fast"], p["slow"])
        return side(f > s, (f < s) if p["allow_short"] else None)

    def targets_block(
        self, cache: IndicatorCache, param_sets: Sequence[Mapping[str, Any]]
    ) -> np.ndarray:
        out = np.empty((len(param_sets), cache.n))
        for i, p in enumerate(param_sets):
            f, s = self._pair(cache, p["fast"], p["slow"])
            np.greater(f, s, out=out[i])
            if p["allow_short"]:
                out[i] -= f < s
        return out


class EmaCrossover(SmaCrossover):
    """Long while the fast EMA is above the slow EMA (short below, if ``allow_short``)."""

    name = "ema_crossover"
    description = "fast/slow exponential moving-average crossover"

    def default_params(self) -> dict[str, Any]:
        return {"fast": 12, "slow": 26, "allow_short": False}

    def _pair(self, cache: IndicatorCache, fast: int, slow: int) -> tuple[np.ndarray, np.ndarray]:
        return cache.ema(fast), cache.ema(slow)


class TimeSeriesMomentum(Strategy):
    """Long when the ``lookback`` return exceeds ``threshold`` (short below -threshold)."""

    name = "momentum"
    family = "trend"
    description = "time-series momentum on the lookback rate of change"

    def default_params(self) -> dict[str, Any]:
        return {"lookback": 60, "threshold": 0.0, "allow_short": False}

    def search_space(self) -> SearchSpace:
        return SearchSpace((IntParam("lookback", 5, 252), FloatParam("threshold", 0.0, 0.2)))

    def targets(self, cache: IndicatorCache, **p: Any) -> np.ndarray:
        m = cache.momentum(p["lookback"])
        thr = float(p["threshold"])
        return side(m > thr, (m < -thr) if p["allow_short"] else None)


class RsiMeanReversion(Strategy):
    """Long after RSI falls below ``lower`` until it recovers to ``exit_level``; shorts mirror."""

    name = "rsi_mean_reversion"
    family = "mean_reversion"
    description = "buy oversold / sell overbought RSI, exit at the midline"

    def default_params(self) -> dict[str, Any]:
        return {
            "window": 14,
            "lower": 30.0,
            "upper": 70.0,
            "exit_level": 50.0,
            "allow_short": False,
        }

    def search_space(self) -> SearchSpace:
        return SearchSpace(
            (
                IntParam("window", 2, 50),
                FloatParam("lower", 5.0, 45.0),
                FloatParam("upper", 55.0, 95.0),
            ),
            (Constraint("lower", "<", "upper"),),
        )

    def targets(self, cache: IndicatorCache, **p: Any) -> np.ndarray:
        r = cache.rsi(p["window"])
        lvl = float(p["exit_level"])
        long = hold(r < p["lower"], r >= lvl)
        short = hold(r > p["upper"], r <= lvl) if p["allow_short"] else None
        return side(long, short)


class BollingerReversion(Strategy):
    """Long below the lower band until the close regains the mid band; shorts mirror."""

    name = "bollinger_reversion"
    family = "mean_reversion"
    description = "fade closes outside Bollinger bands, exit at the moving average"

    def default_params(self) -> dict[str, Any]:
        return {"window": 20, "num_std": 2.0, "allow_short": False}

    def search_space(self) -> SearchSpace:
        return SearchSpace((IntParam("window", 5, 100), FloatParam("num_std", 0.5, 4.0)))

    def targets(self, cache: IndicatorCache, **p: Any) -> np.ndarray:
        w = p["window"]
        mid, sd, c = cache.sma(w), cache.std(w), cache.close
        band = float(p["num_std"]) * sd
        long = hold(c < mid - band, c >= mid)
        short = hold(c > mid + band, c <= mid) if p["allow_short"] else None
        return side(long, short)


class DonchianBreakout(Strategy):
    """Long when the close breaks the prior ``window``-bar high; exit below the prior
    ``exit_window``-bar low (shorts mirror)."""

    name = "donchian_breakout"
    family = "breakout"
    description = "turtle-style Donchian channel breakout"

    def default_params(self) -> dict[str, Any]:
        return {"window": 20, "exit_window": 10, "allow_short": False}

    def search_space(self) -> SearchSpace:
        return SearchSpace(
            (IntParam("window", 5, 200), IntParam("exit_window", 2, 100)),
            (Constraint("exit_window", "<=", "window"),),
        )

    def targets(self, cache: IndicatorCache, **p: Any) -> np.ndarray:
        c = cache.close
        w, e = p["window"], p["exit_window"]
        long = hold(c > cache.prev_high(w), c < cache.prev_low(e))
        short = hold(c < cache.prev_low(w), c > cache.prev_high(e)) if p["allow_short"] else None
        return side(long, short)


for _cls in (
    SmaCrossover,
    EmaCrossover,
    TimeSeriesMomentum,
    RsiMeanReversion,
    BollingerReversion,
    DonchianBreakout,
):
    register_strategy(_cls())
