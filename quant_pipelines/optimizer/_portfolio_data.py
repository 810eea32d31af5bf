"""Portfolio studies' inputs: which strategy a study optimizes, the engine options, and the
universe split on its union calendar (see :mod:`quant_pipelines.optimizer.portfolio`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from quant_pipelines.backtest import resolve_periods_per_year
from quant_pipelines.backtest.portfolio.strategies import (
    SIGNAL_PREFIX,
    PortfolioStrategy,
    get_portfolio_strategy,
    list_portfolio_strategies,
)
from quant_pipelines.backtest.strategies import (
    Strategy,
    UnknownStrategyError,
    get_strategy,
    list_strategies,
)
from quant_pipelines.optimizer.validation import Path, Validation, validation_paths

#: Options of a portfolio study's engine (``run_study(portfolio_options=...)``).
PORTFOLIO_OPTIONS: tuple[str, ...] = ("rebalance", "max_gross_leverage", "allow_short")


def is_portfolio_strategy(name: str) -> bool:
    """Whether ``name`` is a portfolio strategy (and not a single-asset one)."""
    if name in list_strategies():
        return False
    try:
        get_portfolio_strategy(name)
    except UnknownStrategyError:
        return False
    return True


def resolve_strategy(name: str, portfolio: bool | None = None) -> Strategy | PortfolioStrategy:
    """The strategy a study optimizes.

    Args:
        name: A single-asset or a portfolio strategy name.
        portfolio: None: whichever registry has ``name``. True: a portfolio strategy (a
            single-asset name means ``signal_<name>``). False: a single-asset strategy.

    Raises:
        UnknownStrategyError: If no strategy of the requested kind has that name (the message
            lists the known ones).
    """
    if portfolio is False or (portfolio is None and not is_portfolio_strategy(name)):
        if portfolio is None and name not in list_strategies():
            known = [*list_strategies(), *list_portfolio_strategies()]
            raise UnknownStrategyError(
                f"unknown strategy {name!r}; known single-asset and portfolio strategies: "
                f"{', '.join(known)}"
            )
        return get_strategy(name)
    if name in list_strategies():
        name = f"{SIGNAL_PREFIX}{name}"
    return get_portfolio_strategy(name)


def check_portfolio_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``options`` as keyword arguments of :class:`PortfolioEvaluator`.

    Raises:
        ValueError: For an option it does not have (named).
    """
    out = dict(options or {})
    unknown = sorted(set(out) - set(PORTFOLIO_OPTIONS))
    if unknown:
        raise ValueError(
            f"unknown portfolio option(s) {unknown}; known: {', '.join(PORTFOLIO_OPTIONS)}"
        )
    return out


@dataclass(frozen=True)
class PortfolioData:
    """A universe's bars, their union calendar, its IS/holdout split and validation paths.

    Attributes:
        bars: Bar frames by symbol (the whole history).
        index: The union of the symbols' sessions.
        split: In-sample bars on ``index`` (the holdout is ``index[split:]``).
        paths: Validation paths: bar ranges on ``index[:split]``.
        periods_per_year: Annualisation.
    """

    bars: Mapping[str, pd.DataFrame]
    index: pd.Index
    split: int
    paths: tuple[Path, ...]
    periods_per_year: float

    @property
    def symbols(self) -> list[str]:
        """The universe, in input order."""
        return list(self.bars)

    def part(self, holdout: bool) -> dict[str, pd.DataFrame]:
        """Each symbol's in-sample (or holdout) bars; symbols without any are left out."""
        cut = None if self.split >= len(self.index) else self.index[self.split]
        out = {}
        for s, b in self.bars.items():
            if cut is None:
                part = b.iloc[:0] if holdout else b
            else:
                part = b.loc[b.index >= cut] if holdout else b.loc[b.index < cut]
            if len(part):
                out[s] = part
        return out


def prepare_portfolio(
    bars: Mapping[str, pd.DataFrame],
    *,
    oos_fraction: float = 0.3,
    validation: Validation | None = None,
    asset_class: str | None = None,
    periods_per_year: float | None = None,
    min_symbols: int = 2,
    who: str = "portfolio study",
) -> PortfolioData:
    """Splits a universe on its union calendar and computes the validation paths there.

    Args:
        bars: Bar frames by symbol.
        oos_fraction: Share of the union calendar's bars held out at the end (0 for none).
        validation: The validation scheme (None: walk-forward, 3 folds).
        asset_class: Sets the annualisation ("equity", "crypto", "fx" ...).
        periods_per_year: Explicit annualisation; overrides ``asset_class``.
        min_symbols: The fewest symbols the strategy needs.
        who: The strategy's name, for error messages.

    Returns:
        The :class:`PortfolioData`.

    Raises:
        TypeError: If ``bars`` is not a mapping of symbol to DataFrame.
        ValueError: Too few symbols, a symbol without bars (named), a bad fraction, or too
            few bars for the folds.
    """
    if not isinstance(bars, Mapping):
        raise TypeError(
            f"{who} needs bars as a mapping symbol -> DataFrame, got {type(bars).__name__}"
        )
    frames = {str(s): b for s, b in bars.items()}
    if len(frames) < min_symbols:
        raise ValueError(
            f"{who} is cross-sectional and needs a universe of at least {min_symbols} symbols; "
            f"got {len(frames)}: {list(frames)}"
        )
    for s, b in frames.items():
        if not isinstance(b, pd.DataFrame):
            raise TypeError(f"bars of {s!r} must be a DataFrame, got {type(b).__name__}")
        if b.empty:
            raise ValueError(f"symbol {s!r} has no bars")
    if not 0.0 <= oos_fraction < 1.0:
        raise ValueError(f"oos_fraction must be in [0, 1), got {oos_fraction!r}")
    index = frames[next(iter(frames))].index
    for b in list(frames.values())[1:]:
        if not b.index.equals(index):
            index = index.union(b.index)
    n = len(index)
    split = n - round(n * oos_fraction)
    if split < 10:
        raise ValueError(f"{who}: {split} in-sample bars on the union calendar are too few")
    validation = validation or Validation()
    try:
        paths = validation_paths(validation, split)
    except ValueError as exc:
        raise ValueError(f"{who}: {split} in-sample bars on the union calendar: {exc}") from None
    ppy = resolve_periods_per_year(periods_per_year, asset_class)
    return PortfolioData(frames, index, split, paths, ppy)
