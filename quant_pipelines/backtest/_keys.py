"""The metric keys of a backtest, in their one order, grouped by where they are computed.

``BacktestResult.metrics``, the metric columns of ``sweep`` and the output columns of the sweep's
compiled kernel all follow :data:`METRIC_KEYS`; nothing else spells the list out.
"""

from __future__ import annotations

EQUITY_METRICS: tuple[str, ...] = (
    "total_return",
    "cagr",
    "annual_volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "max_drawdown_duration",
)
"""Metrics of the equity curve alone (``_stats.equity_stats``)."""

TRADE_METRICS: tuple[str, ...] = ("n_trades", "win_rate", "profit_factor")
"""Metrics of the round-trip trades (``_trades.trade_stats``)."""

BOOK_METRICS: tuple[str, ...] = (
    "exposure",
    "turnover",
    "buy_and_hold_return",
    "final_equity",
    "total_costs",
)
"""Metrics of the holdings, the fills and the prices (``_assemble.collect_metrics``)."""

METRIC_KEYS: tuple[str, ...] = EQUITY_METRICS + TRADE_METRICS + BOOK_METRICS
"""Keys of ``BacktestResult.metrics`` and the metric columns of ``sweep``, in order."""

INT_METRICS = frozenset({"max_drawdown_duration", "n_trades"})
"""Metrics reported as integers."""
