"""Portfolio strategies: cross-sectional rules and single-asset signals sized by an allocator.

* ``xs_momentum`` - hold the top-k symbols by the return from ``lookback`` to ``skip`` bars ago
  (12-1 momentum: 252 and 21), long-only or long the top / short the bottom;
* ``xs_mean_reversion`` - hold the bottom-k symbols by the return over the last ``lookback``
  bars (long-short: short the top-k as well);
* ``signal_<name>`` - any registered single-asset strategy's targets, per symbol: their sign
  decides which symbols are held and which way, the allocator sizes them;
* ``equal_weight`` / ``inverse_vol`` / ``risk_parity`` / ``min_variance`` - the whole universe
  sized by one allocator.

Scores and signals are computed on each symbol's own bars (``lookback`` and ``skip`` count that
symbol's bars) and carried forward over sessions it does not trade. The cross-sectional rules
rank on rebalance dates only, among symbols with a score that the allocator may hold; k is
``k`` when positive, else ``max(1, floor(fraction x candidates))``, and at most half the
candidates when long-short. Ties go to the symbol listed first. Sizing follows
:mod:`quant_pipelines.backtest.portfolio.allocators` (gross exposure 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from quant_pipelines.backtest.portfolio._xs_base import (
    REGISTRY,
    PortfolioStrategy,
    UnknownPortfolioStrategyError,
    register_portfolio_strategy,
)
from quant_pipelines.backtest.portfolio._xs_panel import Panel
from quant_pipelines.backtest.portfolio._xs_rank import CrossSectional, select_top_k, sized
from quant_pipelines.backtest.space import (
    CategoricalParam,
    Constraint,
    FloatParam,
    IntParam,
    SearchSpace,
)
from quant_pipelines.backtest.strategies import Strategy, get_strategy, list_strategies

SIGNAL_PREFIX = "signal_"
PORTFOLIO_STRATEGIES: Mapping[str, PortfolioStrategy] = REGISTRY

__all__ = [
    "PORTFOLIO_STRATEGIES",
    "SIGNAL_PREFIX",
    "AllocationStrategy",
    "CrossSectionalMeanReversion",
    "CrossSectionalMomentum",
    "PortfolioStrategy",
    "SignalAllocator",
    "UnknownPortfolioStrategyError",
    "get_portfolio_strategy",
    "list_portfolio_strategies",
    "portfolio_weights",
    "register_portfolio_strategy",
    "select_top_k",
]


class CrossSectionalMomentum(CrossSectional):
    """Long the top-k symbols by 12-1 style momentum (short the bottom-k if ``long_short``)."""

    name = "xs_momentum"
    description = "cross-sectional momentum: top-k by the return from lookback to skip bars ago"

    def default_params(self) -> dict[str, Any]:
        return {
            "lookback": 252,
            "skip": 21,
            "k": 0,
            "fraction": 0.2,
            "long_short": False,
            "allocator": "equal",
            "risk_window": 63,
            "rebalance": "monthly",
        }

    def search_space(self) -> SearchSpace:
        return SearchSpace(
            (
                IntParam("lookback", 21, 252),
                IntParam("skip", 0, 21),
                FloatParam("fraction", 0.1, 0.5),
            ),
            (Constraint("skip", "<", "lookback"),),
        )


class CrossSectionalMeanReversion(CrossSectional):
    """Long the bottom-k symbols by short-horizon return (short the top-k if ``long_short``)."""

    name = "xs_mean_reversion"
    description = "cross-sectional reversal: buy the recent losers, sell the recent winners"
    direction = -1.0

    def default_params(self) -> dict[str, Any]:
        return {
            "lookback": 5,
            "skip": 0,
            "k": 0,
            "fraction": 0.2,
            "long_short": False,
            "allocator": "equal",
            "risk_window": 63,
            "rebalance": "weekly",
        }

    def search_space(self) -> SearchSpace:
        return SearchSpace(
            (
                IntParam("lookback", 2, 21),
                FloatParam("fraction", 0.1, 0.5),
                CategoricalParam("rebalance", ("daily", "weekly")),
            )
        )


class SignalAllocator(PortfolioStrategy):
    """A single-asset strategy's targets on every symbol, sized by an allocator.

    Args:
        signal: The single-asset strategy (a registered name or an instance).
    """

    family = "signal_x_allocator"

    def __init__(self, signal: str | Strategy) -> None:
        self.signal = get_strategy(signal)
        self.name = f"{SIGNAL_PREFIX}{self.signal.name}"  # type: ignore[misc]
        self.description = f"{self.signal.name} per symbol, sized by an allocator"  # type: ignore[misc]

    def default_params(self) -> dict[str, Any]:
        return {
            **self.signal.default_params(),
            "allocator": "inverse_vol",
            "risk_window": 63,
            "rebalance": "monthly",
        }

    def search_space(self) -> SearchSpace:
        inner = self.signal.search_space()
        # The closed-form rules only: a risk-based rule re-solves whenever a signal flips.
        alloc = CategoricalParam("allocator", ("equal", "inverse_vol"))
        return SearchSpace((*inner.params, alloc), inner.constraints)

    def compute(self, panel: Panel, params: Mapping[str, Any]) -> np.ndarray:
        own = {k: v for k, v in params.items() if k in self.signal.default_params()}
        selection = np.empty(panel.shape)
        for j, s in enumerate(panel.symbols):
            targets = self.signal.positions(panel.bars[s], **own).to_numpy()
            selection[:, j] = panel.align(s, np.sign(targets))
        return sized(panel, params, np.nan_to_num(selection, nan=0.0))


class AllocationStrategy(PortfolioStrategy):
    """Every symbol of the universe, sized by one allocator.

    Args:
        allocator: One of the allocators; the strategy is named after it.
    """

    family = "allocation"
    _NAMES: Mapping[str, str] = {
        "equal": "equal_weight",
        "inverse_vol": "inverse_vol",
        "risk_parity": "risk_parity",
        "min_variance": "min_variance",
    }

    def __init__(self, allocator: str) -> None:
        self.allocator = allocator
        self.name = self._NAMES[allocator]  # type: ignore[misc]
        self.description = f"the whole universe sized by {allocator}"  # type: ignore[misc]

    def default_params(self) -> dict[str, Any]:
        return {"risk_window": 63, "rebalance": "monthly"}

    def search_space(self) -> SearchSpace:
        if self.allocator == "equal":
            return SearchSpace((CategoricalParam("rebalance", ("daily", "weekly", "monthly")),))
        return SearchSpace(
            (IntParam("risk_window", 20, 252), CategoricalParam("rebalance", ("weekly", "monthly")))
        )

    def compute(self, panel: Panel, params: Mapping[str, Any]) -> np.ndarray:
        return sized(panel, {**params, "allocator": self.allocator}, None)


def get_portfolio_strategy(name: str | PortfolioStrategy) -> PortfolioStrategy:
    """The portfolio strategy called ``name`` (an instance is returned as is).

    ``signal_<name>`` resolves for every registered single-asset strategy, including ones
    registered after this module was imported.

    Raises:
        UnknownPortfolioStrategyError: If no strategy has that name; the message lists them.
    """
    if isinstance(name, PortfolioStrategy):
        return name
    found = REGISTRY.get(name)
    if found is not None:
        return found
    if isinstance(name, str) and name.startswith(SIGNAL_PREFIX):
        signal = name[len(SIGNAL_PREFIX) :]
        if signal in list_strategies():
            return register_portfolio_strategy(SignalAllocator(signal))
    raise UnknownPortfolioStrategyError(
        f"unknown portfolio strategy {name!r}; known: {', '.join(list_portfolio_strategies())}"
    )


def list_portfolio_strategies() -> list[str]:
    """Names of the registered portfolio strategies, sorted."""
    return sorted(REGISTRY)


def portfolio_weights(
    name: str | PortfolioStrategy,
    bars: Mapping[str, pd.DataFrame],
    params: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Target weights of the portfolio strategy ``name`` on a universe.

    Args:
        name: A registered portfolio strategy (or an instance).
        bars: Bar frames by symbol.
        params: Overrides of the strategy's default parameters.

    Returns:
        Weights on the union of sessions, one column per symbol (see
        :meth:`PortfolioStrategy.weights`).

    Raises:
        UnknownPortfolioStrategyError: For an unknown strategy name.
        ValueError: With fewer than 2 symbols, bad bars, or an unknown or invalid parameter.
    """
    return get_portfolio_strategy(name).weights(bars, **dict(params or {}))


for _s in (CrossSectionalMomentum(), CrossSectionalMeanReversion()):
    register_portfolio_strategy(_s)
for _a in ("equal", "inverse_vol", "risk_parity", "min_variance"):
    register_portfolio_strategy(AllocationStrategy(_a))
for _n in list_strategies():
    register_portfolio_strategy(SignalAllocator(_n))
