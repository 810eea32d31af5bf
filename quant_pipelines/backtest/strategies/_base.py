"""The strategy interface and the registry behind ``get_strategy`` / ``list_strategies``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from quant_pipelines.backtest.space import SearchSpace
from quant_pipelines.backtest.strategies._cache import IndicatorCache


class UnknownStrategyError(KeyError, ValueError):
    """No strategy is registered under the requested name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown strategy"


class Strategy(ABC):
    """A rule turning bars into target exposures decided at each bar's close.

    Subclasses set ``name``, ``family`` and ``description``, and implement
    :meth:`default_params`, :meth:`search_space` and :meth:`targets`. Every rule is causal: the
    target at bar t uses bars up to t only (``positions`` is filled at t+1's open by the engine).
    """

    name: ClassVar[str]
    family: ClassVar[str]
    description: ClassVar[str] = ""

    @abstractmethod
    def default_params(self) -> dict[str, Any]:
        """The baseline parameters."""

    @abstractmethod
    def search_space(self) -> SearchSpace:
        """The optimisation space (declarative; see :mod:`quant_pipelines.backtest.space`)."""

    @abstractmethod
    def targets(self, cache: IndicatorCache, **params: Any) -> np.ndarray:
        """Target exposures as a float64 array (no NaN) from cached indicators."""

    def targets_block(
        self, cache: IndicatorCache, param_sets: Sequence[Mapping[str, Any]]
    ) -> np.ndarray:
        """Targets of many resolved parameter sets as an ``(n_sets, n_bars)`` matrix.

        The default loops over :meth:`targets`; strategies override it with a vectorised
        version where one exists. Row i must equal ``targets(cache, **param_sets[i])``.
        """
        out = np.empty((len(param_sets), cache.n))
        for i, p in enumerate(param_sets):
            out[i] = self.targets(cache, **p)
        return out

    def resolve_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overridden by ``params``.

        Raises:
            ValueError: For a parameter this strategy does not have.
        """
        out = self.default_params()
        unknown = sorted(set(params) - set(out))
        if unknown:
            raise ValueError(f"{self.name} has no parameter(s) {unknown}; known: {sorted(out)}")
        out.update(params)
        return out

    def positions(self, bars: pd.DataFrame, **params: Any) -> pd.Series:
        """Target exposure per bar, decided at that bar's close.

        Args:
            bars: Bars in the project's schema.
            **params: Overrides of :meth:`default_params`.

        Returns:
            A float Series on ``bars.index`` (0 during indicator warm-up).
        """
        p = self.resolve_params(params)
        values = self.targets(IndicatorCache(bars), **p)
        return pd.Series(values, index=bars.index, name=self.name)

    def __repr__(self) -> str:
        return f"<Strategy {self.name} ({self.family})>"


_REGISTRY: dict[str, Strategy] = {}


def register_strategy(strategy: Strategy) -> Strategy:
    """Add a strategy instance to the registry under ``strategy.name`` (replacing any)."""
    _REGISTRY[strategy.name] = strategy
    return strategy


def get_strategy(name: str | Strategy) -> Strategy:
    """The registered strategy called ``name`` (a Strategy instance is returned as is).

    Raises:
        UnknownStrategyError: If no strategy has that name; the message lists the known ones.
    """
    if isinstance(name, Strategy):
        return name
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownStrategyError(
            f"unknown strategy {name!r}; known strategies: {', '.join(list_strategies())}"
        ) from None


def list_strategies() -> list[str]:
    """Names of the registered strategies, sorted."""
    return sorted(_REGISTRY)


def hold(entry: np.ndarray, exit_: np.ndarray) -> np.ndarray:
    """1.0 from an entry bar until (excluding) the next exit bar, else 0.0 (entry wins ties)."""
    n = len(entry)
    event = entry | exit_
    idx = np.where(event, np.arange(n), -1)
    last = np.maximum.accumulate(idx) if n else idx
    return np.where(last >= 0, entry[np.maximum(last, 0)], False).astype(np.float64)


def side(long: np.ndarray, short: np.ndarray | None) -> np.ndarray:
    """+1 where long, -1 where short (if given), else 0, as float64."""
    out = long.astype(np.float64)
    if short is not None:
        out -= short
    return out
