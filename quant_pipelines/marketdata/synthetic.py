"""Deterministic synthetic market data with a known regime path and labelled anomalies.

Every symbol has ONE path per ``(seed, freq)``, anchored at :data:`EPOCH` (2000-01-03) and
running to :data:`PATH_END` (2030-12-31); a request returns a slice of it, so
``bars(s, a, c).loc[b:]`` equals ``bars(s, b, c)`` exactly. Requests outside that span return only
the part inside it (possibly no rows). The generation model is described in
``quant_pipelines.marketdata._paths``; intraday bars split each daily bar with a Brownian bridge
(``quant_pipelines.marketdata._intraday``) and inherit their session's regime.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from quant_pipelines.marketdata._anomalies import ANOMALY_KINDS, inject_anomalies
from quant_pipelines.marketdata._intraday import intraday_year
from quant_pipelines.marketdata._paths import (
    EPOCH,
    PATH_END,
    TRENDS,
    VOLATILITIES,
    daily_path,
    symbol_rng,
)
from quant_pipelines.marketdata.calendars import DateLike, as_date, parse_freq
from quant_pipelines.marketdata.schema import make_bars
from quant_pipelines.marketdata.universe import Symbol, Universe, load_universe

__all__ = ["ANOMALY_KINDS", "EPOCH", "PATH_END", "SyntheticSource"]

_DAY = pd.Timedelta("1D")


class SyntheticSource:
    """Synthetic OHLCV bars for the symbols of a universe.

    Args:
        seed: Non-negative integer; same seed and inputs give identical output.
        universe: Symbols to serve; the packaged default universe when ``None``.
        freq: ``"1D"`` (one bar per session, at the open) or an intraday frequency such as
            ``"1h"``.

    Raises:
        ValueError: If the seed is negative or the frequency invalid.
    """

    def __init__(self, seed: int = 0, *, universe: Universe | None = None, freq: str = "1D"):
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self.universe = universe if universe is not None else load_universe()
        self.freq = freq
        self._step = parse_freq(freq)

    def __repr__(self) -> str:
        return f"SyntheticSource(seed={self.seed}, freq={self.freq!r}, universe={self.universe!r})"

    def symbols(self) -> list[str]:
        """Names of the symbols this source serves."""
        return list(self.universe.names)

    def _symbol(self, symbol: str | Symbol) -> Symbol:
        return symbol if isinstance(symbol, Symbol) else self.universe.get(symbol)

    def _rows(self, sym: Symbol, start: DateLike, end: DateLike) -> tuple[np.ndarray, ...]:
        """``(ts_ns, values, day)`` of the bars whose session label lies in ``[start, end]``."""
        path = daily_path(sym, self.seed)
        lo_d, hi_d = max(as_date(start), EPOCH), min(as_date(end), PATH_END)
        lo, hi = path.labels.searchsorted([lo_d, hi_d + _DAY])
        if lo >= hi:
            return np.empty(0, "int64"), np.empty((0, 5)), np.empty(0, "int64")
        if self._step >= _DAY:
            return path.ts_ns[lo:hi], path.values[lo:hi], np.arange(lo, hi)
        chunks = [
            intraday_year(sym, self.seed, self._step.value, year)
            for year in range(lo_d.year, hi_d.year + 1)
        ]
        day = np.concatenate([ch.day for ch in chunks])
        keep = (day >= lo) & (day < hi)
        ts_ns = np.concatenate([ch.ts_ns for ch in chunks])[keep]
        values = np.concatenate([ch.values for ch in chunks])[keep]
        return ts_ns, values, day[keep]

    def bars(self, symbol: str | Symbol, start: DateLike, end: DateLike) -> pd.DataFrame:
        """Bars of the sessions whose label lies in ``[start, end]`` (dates, inclusive).

        Args:
            symbol: Symbol name (or :class:`Symbol`) from the universe.
            start: First session date.
            end: Last session date.

        Returns:
            Clean, sorted bars in the bar schema.

        Raises:
            KeyError: If the symbol is not in the universe.
        """
        ts_ns, values, _ = self._rows(self._symbol(symbol), start, end)
        return make_bars(pd.DatetimeIndex(ts_ns, tz="UTC"), values.copy())

    def regimes(self, symbol: str | Symbol, start: DateLike, end: DateLike) -> pd.DataFrame:
        """The true regime path used to generate :meth:`bars` (same index).

        Args:
            symbol: Symbol name (or :class:`Symbol`) from the universe.
            start: First session date.
            end: Last session date.

        Returns:
            Frame with columns ``trend`` (``"up"``, ``"down"``, ``"range"``), ``volatility``
            (``"calm"``, ``"turbulent"``) and ``label`` (``f"{trend}_{volatility}"``).
        """
        sym = self._symbol(symbol)
        ts_ns, _, day = self._rows(sym, start, end)
        path = daily_path(sym, self.seed)
        trend = np.array(TRENDS, dtype=object)[path.trend[day]]
        vol = np.array(VOLATILITIES, dtype=object)[path.vol[day]]
        index = pd.DatetimeIndex(ts_ns, tz="UTC").as_unit("ns").rename("ts")
        frame = pd.DataFrame({"trend": trend, "volatility": vol}, index=index)
        frame["label"] = frame["trend"] + "_" + frame["volatility"]
        return frame

    def bars_with_anomalies(
        self,
        symbol: str | Symbol,
        start: DateLike,
        end: DateLike,
        *,
        rate: float = 0.01,
        kinds: Iterable[str] | None = None,
        seed: int | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Bars with injected, labelled anomalies (see ``_anomalies`` for the conventions).

        Args:
            symbol: Symbol name (or :class:`Symbol`) from the universe.
            start: First session date.
            end: Last session date.
            rate: Target anomaly events per bar, in ``[0, 1]``; at least one event per kind
                when positive and the range is long enough (one event per 14 bars at most,
                after a clean warm-up of 21 bars).
            kinds: Subset of :data:`ANOMALY_KINDS`; all when ``None``.
            seed: Seed of the injection; the source's seed when ``None``.

        Returns:
            ``(bars, labels)``: the corrupted bars and a frame with columns ``ts``, ``kind``,
            ``detail``, sorted by ``ts``.

        Raises:
            ValueError: If a kind is unknown (the message lists the known ones) or the rate
                is outside ``[0, 1]``.
            KeyError: If the symbol is not in the universe.
        """
        sym = self._symbol(symbol)
        clean = self.bars(sym, start, end)
        inject_seed = self.seed if seed is None else seed
        rng = symbol_rng(sym, inject_seed, 4, self._step.value // 1_000_000_000)
        return inject_anomalies(clean, rate=rate, kinds=kinds, rng=rng)
