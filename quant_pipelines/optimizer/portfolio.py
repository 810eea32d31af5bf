"""Portfolio studies: a portfolio strategy scored as one book, never as an average of symbols.

:class:`PortfolioEvaluator` has the interface of :class:`~quant_pipelines.optimizer.objectives.
Evaluator`, so ``run_study``, the statistics (DSR, PBO, SPA), the leaderboard and the gate use
it unchanged. A parameter set's target weights are computed once over the whole history (every
portfolio strategy is causal) and booked by :func:`~quant_pipelines.backtest.portfolio.
run_portfolio_backtest`, with one cash account:

* the universe is laid on the **union calendar** of its symbols; the in-sample / holdout split
  and the validation paths (walk-forward folds or CPCV) are positions on that calendar;
* ``in_sample``: the objective of the portfolio's equity over the in-sample bars;
* ``validation``: the objective of the portfolio's bar returns on each validation path
  (chained ranges), averaged over paths; what the sampler maximises;
* ``holdout``: the portfolio backtested from flat on the holdout bars;
* the trial's return series (for PBO and SPA) are the portfolio's in-sample bar returns, and
  the benchmark is the engine's equal-weight buy-and-hold of the same universe;
* ``regime_robust`` labels regimes on that equal-weight benchmark's equity (a causal close).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from quant_pipelines.backtest import Costs
from quant_pipelines.backtest.engine import DEFAULT_COSTS
from quant_pipelines.backtest.portfolio import PortfolioResult, run_portfolio_backtest
from quant_pipelines.backtest.portfolio.strategies import PortfolioStrategy
from quant_pipelines.optimizer._paths import path_metrics, sharpe_moments
from quant_pipelines.optimizer._portfolio_data import (
    PORTFOLIO_OPTIONS,
    PortfolioData,
    check_portfolio_options,
    is_portfolio_strategy,
    prepare_portfolio,
    resolve_strategy,
)
from quant_pipelines.optimizer.objectives import (
    MIN_REGIME_BARS,
    OBJECTIVES,
    Evaluation,
    finite,
)
from quant_pipelines.optimizer.validation import Path
from quant_pipelines.signals import regimes

__all__ = [
    "PORTFOLIO_OPTIONS",
    "PortfolioData",
    "PortfolioEvaluator",
    "check_portfolio_options",
    "is_portfolio_strategy",
    "prepare_portfolio",
    "resolve_strategy",
]


class PortfolioEvaluator:
    """Scores parameter sets of one portfolio strategy on a prepared universe (module doc).

    Args:
        strategy: The portfolio strategy.
        data: From :func:`prepare_portfolio`.
        objective: A key of :data:`~quant_pipelines.optimizer.objectives.OBJECTIVES`.
        costs: One cost model for every symbol (or a mapping symbol -> model).
        rebalance: The engine's rebalance rule (``"on_change"``: every target the strategy
            decides is traded, nothing else).
        max_gross_leverage: The engine's gross-leverage cap.
        allow_short: Whether negative weights are booked.
    """

    def __init__(
        self,
        strategy: PortfolioStrategy,
        data: PortfolioData,
        *,
        objective: str = "sharpe",
        costs: Costs | Mapping[str, Costs] = DEFAULT_COSTS,
        rebalance: Any = "on_change",
        max_gross_leverage: float = 1.0,
        allow_short: bool = True,
    ) -> None:
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; known: {sorted(OBJECTIVES)}")
        self.strategy = strategy
        self.data = data
        self.objective = objective
        self.metrics = OBJECTIVES[objective]
        self.costs = costs
        self.rebalance = rebalance
        self.max_gross_leverage = float(max_gross_leverage)
        self.allow_short = bool(allow_short)
        self._is_bars = data.part(holdout=False)
        self._oos_bars = data.part(holdout=True)

    @property
    def n_steps(self) -> int:
        """Validation paths per evaluation (pruning steps); 0 without validation."""
        return len(self.data.paths)

    @property
    def symbols(self) -> list[str]:
        """The universe."""
        return self.data.symbols

    @property
    def periods_per_year(self) -> float:
        """Annualisation."""
        return self.data.periods_per_year

    def periods(self) -> tuple[list[tuple[Any, Any]], list[tuple[Any, Any]]]:
        """(in-sample, holdout) first and last timestamps on the union calendar."""
        ix, k = self.data.index, self.data.split
        oos = [(ix[k], ix[-1])] if k < len(ix) else []
        return [(ix[0], ix[k - 1])], oos

    def weights(self, params: Mapping[str, Any]) -> pd.DataFrame:
        """Target weights over the whole history (union calendar, one column per symbol)."""
        return self.strategy.weights(self.data.bars, **dict(params))

    def backtest(self, weights: pd.DataFrame, *, holdout: bool) -> PortfolioResult | None:
        """The portfolio backtest of ``weights`` on the in-sample or holdout bars, from flat
        (None for a holdout with fewer than 2 bars)."""
        bars = self._oos_bars if holdout else self._is_bars
        ix, k = self.data.index, self.data.split
        rows = ix[k:] if holdout else ix[:k]
        if len(rows) < 2 or not bars:
            return None
        w = weights.loc[rows, list(bars)] if holdout else weights.iloc[:k][list(bars)]
        return run_portfolio_backtest(
            bars,
            w,
            costs=self.costs,
            max_gross_leverage=self.max_gross_leverage,
            allow_short=self.allow_short,
            rebalance=self.rebalance,
            periods_per_year=self.periods_per_year,
        )

    def in_sample_returns(self, params: Mapping[str, Any]) -> np.ndarray:
        """The portfolio's IS bar returns of ``params`` (bar 0 left out)."""
        p = self.strategy.resolve_params(params)
        result = self.backtest(self.weights(p), holdout=False)
        return result.returns.to_numpy()[1:]

    @cached_property
    def _benchmarks(self) -> tuple[PortfolioResult, PortfolioResult | None]:
        """Flat books of the IS and holdout bars: their equal-weight benchmarks (no costs)."""
        flat = pd.DataFrame(0.0, index=self.data.index, columns=self.symbols)
        return self.backtest(flat, holdout=False), self.backtest(flat, holdout=True)

    def benchmark_returns(self) -> np.ndarray:
        """The equal-weight buy-and-hold benchmark's IS bar returns (bar 0 left out)."""
        bench = self._benchmarks[0].benchmark.to_numpy()
        return bench[1:] / bench[:-1] - 1.0

    def buy_and_hold_sharpe(self, *, holdout: bool) -> float | None:
        """The equal-weight benchmark's Sharpe ratio on the IS or holdout bars."""
        result = self._benchmarks[1 if holdout else 0]
        return None if result is None else float(result.metrics["benchmark_sharpe"])

    @cached_property
    def _labels(self) -> np.ndarray:
        """Regime labels on the union calendar, of the whole history's equal-weight index."""
        flat = pd.DataFrame(0.0, index=self.data.index, columns=self.symbols)
        bench = run_portfolio_backtest(self.data.bars, flat, costs=self.costs).benchmark
        return regimes(pd.DataFrame({"close": bench.to_numpy()}, index=bench.index))[
            "label"
        ].to_numpy()

    def _path(self, returns: np.ndarray, path: Path) -> dict[str, float]:
        labels = self._labels if self.objective == "regime_robust" else None
        return path_metrics(
            returns, path, self.periods_per_year, labels=labels, min_regime_bars=MIN_REGIME_BARS
        )

    def _metrics(self, result: PortfolioResult, lo: int) -> dict[str, float]:
        out = {k: float(v) for k, v in result.metrics.items()}
        if self.objective == "regime_robust":
            r = result.returns.to_numpy()
            n = len(r)
            labels = self._labels[lo : lo + n]
            out["worst_regime_sharpe"] = path_metrics(
                r, ((0, n),), self.periods_per_year, labels=labels, min_regime_bars=MIN_REGIME_BARS
            )["worst_regime_sharpe"]
        return out

    def evaluate(
        self,
        params: Mapping[str, Any],
        *,
        report: Callable[[float, int], None] | None = None,
        partial: Callable[[dict[str, float]], None] | None = None,
    ) -> Evaluation:
        """Backtests ``params`` as one portfolio in sample, scores the validation paths on its
        returns, then the holdout (as :meth:`Evaluator.evaluate`, on the portfolio's book).

        Raises:
            ValueError: For an invalid parameter (named) or bad bars.
        """
        p = self.strategy.resolve_params(params)
        weights = self.weights(p)
        is_result = self.backtest(weights, holdout=False)
        returns = is_result.returns.to_numpy()
        first = self.metrics[0]
        per_path: list[dict[str, float]] = []
        for k, path in enumerate(self.data.paths):
            per_path.append(self._path(returns, path))
            if k < self.n_steps - 1 and (report is not None or partial is not None):
                if partial is not None:
                    seen = tuple(rng for q in self.data.paths[: k + 1] for rng in q)
                    stats = sharpe_moments(returns, seen, self.periods_per_year)
                    partial({**stats, "step": float(k)})
                if report is not None:
                    report(float(np.mean([finite(m[first]) for m in per_path])), k)
        is_metrics = self._metrics(is_result, 0)
        in_sample = tuple(finite(is_metrics[m]) for m in self.metrics)
        validation = None
        if per_path:
            validation = tuple(
                float(np.mean([finite(pm[m]) for pm in per_path])) for m in self.metrics
            )
        is_metrics.update(self._moments(returns))
        oos_result = self.backtest(weights, holdout=True)
        oos = {} if oos_result is None else self._metrics(oos_result, self.data.split)
        holdout = tuple(finite(oos[m]) for m in self.metrics) if oos else None
        return Evaluation(
            params=p,
            values=validation if validation is not None else in_sample,
            is_metrics=is_metrics,
            oos_metrics=oos,
            in_sample=in_sample,
            validation=validation,
            path_values=tuple(finite(pm[first]) for pm in per_path),
            holdout=holdout,
        )

    def _moments(self, returns: np.ndarray) -> dict[str, float]:
        r = pd.Series(returns[1:])
        s, k = float(r.skew()), float(r.kurt())
        return {
            "skew": s if math.isfinite(s) else 0.0,
            "kurtosis": k + 3.0 if math.isfinite(k) else 3.0,
            "n_obs": float(self.data.split),
            "periods_per_year": float(self.periods_per_year),
            "n_symbols": float(len(self._is_bars)),
        }
