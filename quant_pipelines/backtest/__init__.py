"""BacktestService: a vectorised, look-ahead-free backtester with strategies and search spaces.

A target exposure decided at bar t's close fills at bar t+1's open with slippage and
commission (:mod:`quant_pipelines.backtest.fills`, shared with the trading simulator), under a
cost model of :mod:`quant_pipelines.backtest.costs` (flat, or volume-share with market impact).
Many symbols with one cash account: :mod:`quant_pipelines.backtest.portfolio`.
"""

from __future__ import annotations

from quant_pipelines.backtest.costs import CostModel, FlatCosts, VolumeShareCosts
from quant_pipelines.backtest.cpcv import CPCVPlan, CPCVSplit, make_cpcv_splits
from quant_pipelines.backtest.deflated import deflated_sharpe_ratio, expected_max_sharpe
from quant_pipelines.backtest.engine import run_backtest
from quant_pipelines.backtest.fills import Book, Costs, Fill, rebalance
from quant_pipelines.backtest.metrics import (
    PERIODS_PER_YEAR,
    compute_metrics,
    metrics_by_regime,
    resolve_periods_per_year,
)
from quant_pipelines.backtest.plot import plot_equity
from quant_pipelines.backtest.result import BacktestResult
from quant_pipelines.backtest.space import (
    CategoricalParam,
    Constraint,
    FloatParam,
    IntParam,
    SearchSpace,
)
from quant_pipelines.backtest.strategies import (
    Strategy,
    UnknownStrategyError,
    get_strategy,
    list_strategies,
    register_strategy,
)
from quant_pipelines.backtest.sweep import sweep
from quant_pipelines.backtest.walk_forward import WalkForwardResult, make_folds, walk_forward

__all__ = [
    "PERIODS_PER_YEAR",
    "BacktestResult",
    "Book",
    "CPCVPlan",
    "CPCVSplit",
    "CategoricalParam",
    "Constraint",
    "CostModel",
    "Costs",
    "Fill",
    "FlatCosts",
    "FloatParam",
    "IntParam",
    "SearchSpace",
    "Strategy",
    "UnknownStrategyError",
    "VolumeShareCosts",
    "WalkForwardResult",
    "compute_metrics",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "get_strategy",
    "list_strategies",
    "make_cpcv_splits",
    "make_folds",
    "metrics_by_regime",
    "plot_equity",
    "rebalance",
    "register_strategy",
    "resolve_periods_per_year",
    "run_backtest",
    "sweep",
    "walk_forward",
]
