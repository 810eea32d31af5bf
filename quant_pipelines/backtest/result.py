"""``BacktestResult``: arrays computed by the engine, exposed as pandas objects on demand."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from quant_pipelines.backtest._trades import TradeArrays
from quant_pipelines.backtest.costs import CostModel

TRADE_COLUMNS: tuple[str, ...] = (
    "entry_ts",
    "exit_ts",
    "entry_price",
    "exit_price",
    "side",
    "pnl",
    "return",
    "bars_held",
    "is_open",
)


class BacktestResult:
    """The outcome of :func:`~quant_pipelines.backtest.run_backtest`.

    The pandas views are built lazily from the engine's arrays, so a run that only needs
    ``metrics`` (an optimizer trial) never pays for them.

    Attributes:
        metrics: Metric name to value (see ``docs/backtest.md``).
        costs: The costs used.
        initial_equity: Starting equity.
        periods_per_year: Annualisation factor used.
        max_leverage: Exposure bound used.
        ruined_at: Timestamp at which equity reached zero or below, or None.
    """

    def __init__(
        self,
        *,
        index: pd.Index,
        closes: np.ndarray,
        targets: np.ndarray,
        units: np.ndarray,
        equity: np.ndarray,
        trades: TradeArrays,
        metrics: dict[str, float | int],
        costs: CostModel,
        initial_equity: float,
        periods_per_year: float,
        max_leverage: float,
        ruin_bar: int,
    ) -> None:
        self._index = index
        self._closes = closes
        self._targets = targets
        self._units = units
        self._equity = equity
        self._trades = trades
        self.metrics = metrics
        self.costs = costs
        self.initial_equity = initial_equity
        self.periods_per_year = periods_per_year
        self.max_leverage = max_leverage
        self.ruined_at = index[ruin_bar] if ruin_bar >= 0 else None

    @cached_property
    def equity(self) -> pd.Series:
        """Equity marked at each bar's close."""
        return pd.Series(self._equity, index=self._index, name="equity")

    @cached_property
    def returns(self) -> pd.Series:
        """Bar returns ``E_t / E_{t-1} - 1`` (bar 0 against the initial equity; 0 once ruined)."""
        e = self._equity
        prev = np.concatenate(([self.initial_equity], e[:-1]))
        r = np.divide(e, prev, out=np.ones_like(e), where=prev > 0) - 1.0
        return pd.Series(r, index=self._index, name="returns")

    @cached_property
    def positions(self) -> pd.Series:
        """Target exposure decided at each close (after clipping to ``max_leverage``)."""
        return pd.Series(self._targets, index=self._index, name="positions")

    @cached_property
    def units(self) -> pd.Series:
        """Units held at each close."""
        return pd.Series(self._units, index=self._index, name="units")

    @cached_property
    def exposure(self) -> pd.Series:
        """Held exposure at each close: ``units * close / equity`` (0 when equity is 0)."""
        e = self._equity
        x = np.divide(self._units * self._closes, e, out=np.zeros_like(e), where=e > 0)
        return pd.Series(x, index=self._index, name="exposure")

    @cached_property
    def trades(self) -> pd.DataFrame:
        """Round-trip trades (see ``docs/backtest.md``), one row per trade."""
        t = self._trades
        side = np.where(t.side > 0, "long", "short").astype(object)
        return pd.DataFrame(
            {
                "entry_ts": self._index[t.entry_bar],
                "exit_ts": self._index[t.exit_bar],
                "entry_price": t.entry_price,
                "exit_price": t.exit_price,
                "side": side,
                "pnl": t.pnl,
                "return": t.ret,
                "bars_held": t.bars_held.astype(np.int64),
                "is_open": t.is_open.astype(bool),
            },
            columns=list(TRADE_COLUMNS),
        )

    def __repr__(self) -> str:
        m = self.metrics
        return (
            f"BacktestResult(bars={len(self._index)}, total_return={m['total_return']:.4f}, "
            f"sharpe={m['sharpe']:.3f}, max_drawdown={m['max_drawdown']:.4f}, "
            f"n_trades={m['n_trades']})"
        )
