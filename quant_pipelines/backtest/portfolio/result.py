"""``PortfolioResult``: the portfolio engine's arrays, exposed as pandas objects on demand."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from quant_pipelines.backtest._trades import TradeArrays
from quant_pipelines.backtest.costs import CostModel
from quant_pipelines.backtest.portfolio._kernel import (
    EV_BAR,
    EV_CASH,
    EV_EQUITY,
    EV_FEE,
    EV_NEW,
    EV_OLD,
    EV_OPEN,
    EV_PRICE,
    EV_SYMBOL,
)
from quant_pipelines.backtest.portfolio._metrics import RawBook, contributions
from quant_pipelines.backtest.portfolio.rebalance import Rebalance


class PortfolioResult:
    """The outcome of :func:`~quant_pipelines.backtest.portfolio.run_portfolio_backtest`.

    The pandas views are built lazily, so a run that only needs ``metrics`` never pays for them.

    Attributes:
        metrics: ``METRIC_KEYS`` of a single backtest plus ``PORTFOLIO_METRIC_KEYS``
            (see ``docs/portfolio.md``).
        symbols: The universe, in the weights' column order.
        costs: The cost model of each symbol.
        initial_equity: Starting equity.
        periods_per_year: Annualisation factor used.
        max_gross_leverage: Gross exposure cap applied to the target weights.
        rebalance: The rebalance rule used.
        ruined_at: Timestamp at which equity reached zero or below, or None.
    """

    def __init__(
        self,
        *,
        index: pd.Index,
        symbols: tuple[str, ...],
        closes: np.ndarray,
        targets: np.ndarray,
        raw: RawBook,
        trades: TradeArrays,
        metrics: dict[str, float | int],
        costs: dict[str, CostModel],
        initial_equity: float,
        periods_per_year: float,
        max_gross_leverage: float,
        rebalance: Rebalance,
    ) -> None:
        self._index = index
        self._closes = closes
        self._targets = targets
        self._raw = raw
        self._trades = trades
        self.symbols = symbols
        self.metrics = metrics
        self.costs = costs
        self.initial_equity = initial_equity
        self.periods_per_year = periods_per_year
        self.max_gross_leverage = max_gross_leverage
        self.rebalance = rebalance
        self.ruined_at = index[raw.ruin_bar] if raw.ruin_bar >= 0 else None

    def _frame(self, values: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(values, index=self._index, columns=pd.Index(self.symbols))

    @cached_property
    def _marks(self) -> np.ndarray:
        """Each symbol's last close at each bar (NaN before its first session)."""
        return self._frame(self._closes).ffill().to_numpy()

    @cached_property
    def equity(self) -> pd.Series:
        """Equity marked at each close (0 from the ruin bar on)."""
        return pd.Series(self._raw.equity, index=self._index, name="equity")

    @cached_property
    def returns(self) -> pd.Series:
        """Bar returns ``E_t / E_{t-1} - 1`` (bar 0 against the initial equity; 0 once ruined)."""
        e = self._raw.equity
        prev = np.concatenate(([self.initial_equity], e[:-1]))
        r = np.divide(e, prev, out=np.ones_like(e), where=prev > 0) - 1.0
        return pd.Series(r, index=self._index, name="returns")

    @cached_property
    def cash(self) -> pd.Series:
        """Cash at each close (negative when leveraged)."""
        return pd.Series(self._raw.cash, index=self._index, name="cash")

    @cached_property
    def targets(self) -> pd.DataFrame:
        """Target weights decided at each close, after the short and leverage rules."""
        return self._frame(self._targets)

    @cached_property
    def positions(self) -> pd.DataFrame:
        """Units held per symbol at each close."""
        return self._frame(self._raw.units)

    @cached_property
    def weights(self) -> pd.DataFrame:
        """Held weights at each close: ``units * last close / equity`` (0 once ruined)."""
        e = self._raw.equity[:, None]
        value = self._raw.units * np.nan_to_num(self._marks)
        return self._frame(np.divide(value, e, out=np.zeros_like(value), where=e > 0))

    @cached_property
    def benchmark(self) -> pd.Series:
        """Equity of the equal-weight buy-and-hold benchmark of the universe (no costs)."""
        return pd.Series(self._raw.benchmark, index=self._index, name="benchmark")

    @cached_property
    def fills(self) -> pd.DataFrame:
        """Every fill: timestamp, symbol, units before/after, open, fill price and costs."""
        i, f = self._raw.ev_i, self._raw.ev_f
        du = np.abs(f[EV_NEW] - f[EV_OLD])
        return pd.DataFrame(
            {
                "ts": self._index[i[EV_BAR]],
                "symbol": np.asarray(self.symbols, dtype=object)[i[EV_SYMBOL]],
                "units_before": f[EV_OLD],
                "units_after": f[EV_NEW],
                "open": f[EV_OPEN],
                "price": f[EV_PRICE],
                "notional": du * f[EV_PRICE],
                "commission": f[EV_FEE],
                "slippage_cost": du * np.abs(f[EV_PRICE] - f[EV_OPEN]),
                "equity_before": f[EV_EQUITY],
                "cash_after": f[EV_CASH],
            }
        )

    @cached_property
    def costs_paid(self) -> pd.Series:
        """Commission plus slippage (impact included) paid per symbol."""
        return self.contributions["costs"].rename("costs_paid")

    @cached_property
    def trades(self) -> pd.DataFrame:
        """Round trips per symbol (as ``BacktestResult.trades``, plus ``symbol``).

        ``return`` is the trade's P&L over the portfolio's equity before its entry fill: what
        the trade added to the portfolio, in entry-equity terms.
        """
        t = self._trades
        side = np.where(t.side > 0, "long", "short").astype(object)
        base = self._at_entry(EV_EQUITY)
        ret = np.divide(t.pnl, base, out=np.zeros_like(t.pnl), where=base > 0)
        return pd.DataFrame(
            {
                "symbol": np.asarray(self.symbols, dtype=object)[t.run],
                "entry_ts": self._index[t.entry_bar],
                "exit_ts": self._index[t.exit_bar],
                "entry_price": t.entry_price,
                "exit_price": t.exit_price,
                "side": side,
                "pnl": t.pnl,
                "return": ret,
                "bars_held": t.bars_held.astype(np.int64),
                "is_open": t.is_open.astype(bool),
            }
        )

    def _at_entry(self, row: int) -> np.ndarray:
        """Row ``row`` of the float events, at each trade's entry fill."""
        i, f = self._raw.ev_i, self._raw.ev_f
        stride = len(self._index) + 1
        key = i[EV_SYMBOL] * stride + i[EV_BAR]  # one fill per symbol and bar
        order = np.argsort(key, kind="stable")
        t = self._trades
        at = np.searchsorted(key[order], t.run * stride + t.entry_bar)
        return f[row][order][at]

    @cached_property
    def contributions(self) -> pd.DataFrame:
        """Per symbol: P&L, costs, fills and contributions to return and risk."""
        return contributions(
            self._raw,
            self._marks,
            self.symbols,
            initial_equity=self.initial_equity,
            annual_volatility=float(self.metrics["annual_volatility"]),
        )

    def __repr__(self) -> str:
        m = self.metrics
        return (
            f"PortfolioResult(symbols={len(self.symbols)}, bars={len(self._index)}, "
            f"total_return={m['total_return']:.4f}, sharpe={m['sharpe']:.3f}, "
            f"max_drawdown={m['max_drawdown']:.4f}, benchmark_return="
            f"{m['buy_and_hold_return']:.4f})"
        )
