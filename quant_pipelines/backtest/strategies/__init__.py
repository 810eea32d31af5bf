"""Strategies: rules mapping bars to target exposures, with their search spaces."""

from __future__ import annotations

from quant_pipelines.backtest.strategies import rules as _rules  # noqa: F401  (registers)
from quant_pipelines.backtest.strategies._base import (
    Strategy,
    UnknownStrategyError,
    get_strategy,
    list_strategies,
    register_strategy,
)
from quant_pipelines.backtest.strategies._cache import IndicatorCache

__all__ = [
    "IndicatorCache",
    "Strategy",
    "UnknownStrategyError",
    "get_strategy",
    "list_strategies",
    "register_strategy",
]
