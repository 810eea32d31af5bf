"""Portfolio backtests: many symbols, one cash account, target weights filled at next opens.

:func:`run_portfolio_backtest` books target weights (decided at each close, filled at each
symbol's next open) over a universe aligned on the union of its sessions, with the cost models
of :mod:`quant_pipelines.backtest.costs`, a gross-leverage cap, the ruin rule and calendar or
drift-band rebalancing. See ``docs/portfolio.md``.
"""

from __future__ import annotations

from quant_pipelines.backtest.portfolio._metrics import PORTFOLIO_METRIC_KEYS
from quant_pipelines.backtest.portfolio.engine import run_portfolio_backtest
from quant_pipelines.backtest.portfolio.rebalance import REBALANCE_RULES, DriftBand, Rebalance
from quant_pipelines.backtest.portfolio.result import PortfolioResult

__all__ = [
    "PORTFOLIO_METRIC_KEYS",
    "REBALANCE_RULES",
    "DriftBand",
    "PortfolioResult",
    "Rebalance",
    "run_portfolio_backtest",
]
