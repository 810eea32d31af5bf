"""Per-bars memo of indicator arrays, so a sweep computes each (indicator, window) once."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from quant_pipelines.backtest._frame import float_columns
from quant_pipelines.signals import kernels as k


class IndicatorCache:
    """Indicator arrays of one bar frame, computed on first use with the signals kernels.

    Args:
        bars: Bar frame (``close``; ``high``/``low`` when a rule needs them).
    """

    def __init__(self, bars: pd.DataFrame) -> None:
        self.bars = bars
        (self.close,) = float_columns(bars, ("close",))
        self.n = len(self.close)
        self._memo: dict[tuple[object, ...], np.ndarray] = {}
        self._cs: np.ndarray | None = None

    def _get(self, key: tuple[object, ...], fn: Callable[[], np.ndarray]) -> np.ndarray:
        out = self._memo.get(key)
        if out is None:
            out = self._memo[key] = fn()
        return out

    def column(self, name: str) -> np.ndarray:
        """A bar column as float64."""
        return self._get(("col", name), lambda: float_columns(self.bars, (name,))[0])

    def sma(self, window: int) -> np.ndarray:
        """Simple moving average of the close (shares one cumulative sum across windows)."""
        out = self._memo.get(("sma", window))
        if out is not None:
            return out
        x = self.close
        if self._cs is None:
            finite = self.n > 0 and bool(np.isfinite(x).all())
            self._cs = np.cumsum(x - x[0]) if finite else np.empty(0)
        if len(self._cs) == self.n:
            out = k.rolling_mean_cs(x, self._cs, window)
        else:
            out = k.rolling_mean(x, window)
        self._memo[("sma", window)] = out
        return out

    def ema(self, span: int) -> np.ndarray:
        """Exponential moving average of the close."""
        return self._get(("ema", span), lambda: k.ema(self.close, span))

    def rsi(self, window: int) -> np.ndarray:
        """Wilder RSI of the close."""
        return self._get(("rsi", window), lambda: k.rsi(self.close, window))

    def std(self, window: int) -> np.ndarray:
        """Rolling population standard deviation of the close."""
        return self._get(("std", window), lambda: k.rolling_std(self.close, window))

    def momentum(self, window: int) -> np.ndarray:
        """Rate of change of the close."""
        return self._get(("mom", window), lambda: k.momentum(self.close, window))

    def prev_high(self, window: int) -> np.ndarray:
        """Highest high of the ``window`` bars *before* t (NaN at the start)."""
        return self._get(
            ("phigh", window), lambda: _shift(k.rolling_max(self.column("high"), window))
        )

    def prev_low(self, window: int) -> np.ndarray:
        """Lowest low of the ``window`` bars *before* t (NaN at the start)."""
        return self._get(
            ("plow", window), lambda: _shift(k.rolling_min(self.column("low"), window))
        )


def _shift(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    if len(x):
        out[0] = np.nan
        out[1:] = x[:-1]
    return out
