"""Portfolio backtests: many symbols, one cash account, target weights filled at next opens.

:func:`run_portfolio_backtest` books target weights (decided at each close, filled at each
symbol's next open) over a universe aligned on the union of its sessions, with the cost models
of :mod:`quant_pipelines.backtest.costs`, a gross-leverage cap, the ruin rule and calendar or
drift-band rebalancing. The allocators (:mod:`~quant_pipelines.backtest.portfolio.allocators`)
size a universe on trailing causal covariance; the portfolio strategies
(:mod:`~quant_pipelines.backtest.portfolio.strategies`) turn its bars into target weights.
See ``docs/portfolio.md``.
"""

from __future__ import annotations

from quant_pipelines.backtest.portfolio._metrics import PORTFOLIO_METRIC_KEYS
from quant_pipelines.backtest.portfolio.allocators import (
    ALLOCATORS,
    allocate,
    equal_weights,
    inverse_volatility_weights,
    min_variance_weights,
    risk_contributions,
    risk_parity_weights,
    shrunk_covariance,
)
from quant_pipelines.backtest.portfolio.engine import run_portfolio_backtest
from quant_pipelines.backtest.portfolio.rebalance import REBALANCE_RULES, DriftBand, Rebalance
from quant_pipelines.backtest.portfolio.result import PortfolioResult
from quant_pipelines.backtest.portfolio.strategies import (
    PORTFOLIO_STRATEGIES,
    AllocationStrategy,
    CrossSectionalMeanReversion,
    CrossSectionalMomentum,
    PortfolioStrategy,
    SignalAllocator,
    UnknownPortfolioStrategyError,
    get_portfolio_strategy,
    list_portfolio_strategies,
    portfolio_weights,
    register_portfolio_strategy,
)

__all__ = [
    "ALLOCATORS",
    "PORTFOLIO_METRIC_KEYS",
    "PORTFOLIO_STRATEGIES",
    "REBALANCE_RULES",
    "AllocationStrategy",
    "CrossSectionalMeanReversion",
    "CrossSectionalMomentum",
    "DriftBand",
    "PortfolioResult",
    "PortfolioStrategy",
    "Rebalance",
    "SignalAllocator",
    "UnknownPortfolioStrategyError",
    "allocate",
    "equal_weights",
    "get_portfolio_strategy",
    "inverse_volatility_weights",
    "list_portfolio_strategies",
    "min_variance_weights",
    "portfolio_weights",
    "register_portfolio_strategy",
    "risk_contributions",
    "risk_parity_weights",
    "run_portfolio_backtest",
    "shrunk_covariance",
]
