"""The portfolio-strategy interface, its registry and the shared parameter checks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from quant_pipelines.backtest.portfolio._xs_panel import (
    REBALANCE_RULES,
    Panel,
    build_panel,
    rebalance_mask,
)
from quant_pipelines.backtest.portfolio.allocators import ALLOCATORS
from quant_pipelines.backtest.space import SearchSpace
from quant_pipelines.backtest.strategies import UnknownStrategyError


class UnknownPortfolioStrategyError(UnknownStrategyError):
    """No portfolio strategy is registered under the requested name."""


class PortfolioStrategy(ABC):
    """A rule turning a universe's bars into target weights decided at each bar's close.

    Subclasses set ``name``, ``family`` and ``description`` and implement
    :meth:`default_params`, :meth:`search_space` and :meth:`compute`. Every rule is causal: the
    weights of bar t use bars stamped at or before t only.
    """

    name: ClassVar[str]
    family: ClassVar[str]
    description: ClassVar[str] = ""
    min_symbols: ClassVar[int] = 2

    @abstractmethod
    def default_params(self) -> dict[str, Any]:
        """The baseline parameters."""

    @abstractmethod
    def search_space(self) -> SearchSpace:
        """The optimisation space (declarative; see :mod:`quant_pipelines.backtest.space`)."""

    @abstractmethod
    def compute(self, panel: Panel, params: Mapping[str, Any]) -> np.ndarray:
        """Weights ``(n_bars, n_symbols)`` on the panel from resolved, checked parameters."""

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Raise ValueError naming the first parameter with an invalid value."""
        if "allocator" in params and params["allocator"] not in ALLOCATORS:
            raise ValueError(
                f"{self.name}: unknown allocator {params['allocator']!r}; "
                f"known allocators: {list(ALLOCATORS)}"
            )
        if "risk_window" in params:
            check_int(self.name, params, "risk_window", 2)
        if "rebalance" in params:
            check_rebalance(self.name, params["rebalance"])

    def resolve_params(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overridden by ``params``, checked.

        Raises:
            ValueError: For a parameter this strategy does not have (named), or a bad value.
        """
        out = self.default_params()
        unknown = sorted(set(params or {}) - set(out))
        if unknown:
            raise ValueError(f"{self.name} has no parameter(s) {unknown}; known: {sorted(out)}")
        out.update(params or {})
        self.check_params(out)
        return out

    def weights(self, bars: Mapping[str, pd.DataFrame], **params: Any) -> pd.DataFrame:
        """Target weights of the universe, one row per bar of the union of sessions.

        Args:
            bars: Bar frames by symbol (at least :attr:`min_symbols`).
            **params: Overrides of :meth:`default_params`.

        Returns:
            Weights (fraction of equity, negative = short) on the union of sessions, one column
            per symbol; 0 for a symbol before it trades and during warm-up. No NaN.

        Raises:
            ValueError: With too few symbols, bad bars, or an unknown or invalid parameter.
        """
        p = self.resolve_params(params)
        if isinstance(bars, Mapping) and len(bars) < self.min_symbols:
            raise ValueError(
                f"{self.name} is cross-sectional and needs a universe of at least "
                f"{self.min_symbols} symbols; got {len(bars)}: {list(bars)}"
            )
        panel = build_panel(bars, min_symbols=self.min_symbols, who=self.name)
        return panel.frame(self.compute(panel, p))

    def __repr__(self) -> str:
        return f"<PortfolioStrategy {self.name} ({self.family})>"


def check_int(who: str, params: Mapping[str, Any], name: str, low: int) -> int:
    """``params[name]`` as an int >= ``low``; ValueError naming it otherwise."""
    v = params[name]
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < low:
        raise ValueError(f"{who}: parameter {name!r} must be an integer >= {low}, got {v!r}")
    return int(v)


def check_rebalance(who: str, rule: Any) -> None:
    """Raise ValueError naming ``rebalance`` if the rule is not understood."""
    try:
        rebalance_mask(pd.DatetimeIndex([], tz="UTC"), rule)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"{who}: parameter 'rebalance' must be one of {list(REBALANCE_RULES)}, a bar "
            f"interval or a set of dates; got {rule!r}"
        ) from exc


REGISTRY: dict[str, PortfolioStrategy] = {}


def register_portfolio_strategy(strategy: PortfolioStrategy) -> PortfolioStrategy:
    """Add a portfolio strategy to the registry under ``strategy.name`` (replacing any)."""
    REGISTRY[strategy.name] = strategy
    return strategy
