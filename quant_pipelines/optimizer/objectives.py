"""Objectives: a strategy's parameters scored in sample by the backtester, with walk-forward steps.

The bars of each symbol are split in time: the first ``1 - oos_fraction`` is in sample (IS), the
rest out of sample (OOS). Targets are computed once on the whole history (strategies are
causal, so the IS targets equal those computed on IS bars alone). Step ``k`` of an evaluation
backtests the anchored window ``[0, end_k)`` of the IS bars, where ``end_k`` is the end of the
k-th test window of :func:`~quant_pipelines.backtest.make_folds`; the last step is the whole IS
period, so the final intermediate value equals the objective. These steps are what a pruner
sees. With several symbols, metrics are averaged over symbols (trades are summed), and the
regime-robust objective takes the worst symbol.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from quant_pipelines.backtest import (
    Costs,
    Strategy,
    make_folds,
    metrics_by_regime,
    resolve_periods_per_year,
    run_backtest,
)
from quant_pipelines.backtest.engine import DEFAULT_COSTS
from quant_pipelines.backtest.strategies import IndicatorCache
from quant_pipelines.signals import regimes

#: Objective name -> the metric (or metrics) maximised. All are maximised: ``max_drawdown``
#: is <= 0, so maximising it means a shallower drawdown.
OBJECTIVES: Mapping[str, tuple[str, ...]] = {
    "sharpe": ("sharpe",),
    "sortino": ("sortino",),
    "calmar": ("calmar",),
    "total_return": ("total_return",),
    "sharpe_drawdown": ("sharpe", "max_drawdown"),
    "multi": ("sharpe", "max_drawdown"),  # the HTTP API's name for sharpe_drawdown
    "regime_robust": ("worst_regime_sharpe",),
}
#: Regimes with fewer IS bars than this are left out of the worst-regime Sharpe.
MIN_REGIME_BARS = 20
_CAP = 1e6  # +/-inf ratios (e.g. Calmar without drawdown) are clipped to this


class Pruned(Exception):  # noqa: N818  (a signal, raised by a reporter)
    """Raised by a ``report`` callback to stop an evaluation early."""


@dataclass(frozen=True)
class SymbolData:
    """One symbol's bars, IS/OOS split and regime labels."""

    symbol: str
    bars: pd.DataFrame
    split: int
    step_ends: tuple[int, ...]
    labels: pd.Series | None
    periods_per_year: float


@dataclass(frozen=True)
class Evaluation:
    """The scores of one parameter set.

    Attributes:
        params: The resolved parameters (defaults filled in).
        values: Objective value(s), finite.
        is_metrics: IS metrics, averaged over symbols, plus ``worst_regime_sharpe``,
            ``skew``, ``kurtosis`` (non-excess), ``n_obs`` and ``periods_per_year`` of the IS
            returns (for the deflated Sharpe ratio).
        oos_metrics: OOS metrics averaged over symbols (empty without an OOS period).
    """

    params: dict[str, Any]
    values: tuple[float, ...]
    is_metrics: dict[str, float]
    oos_metrics: dict[str, float]


def finite(x: float) -> float:
    """``x`` with +/-inf clipped to +/-1e6; NaN raises ValueError."""
    x = float(x)
    if math.isnan(x):
        raise ValueError("objective is NaN")
    return max(-_CAP, min(_CAP, x))


def _average(rows: list[dict[str, float]]) -> dict[str, float]:
    if not rows:
        return {}
    out = {}
    for key in rows[0]:
        vals = [float(r[key]) for r in rows]
        out[key] = float(sum(vals)) if key == "n_trades" else float(np.mean(vals))
    return out


class Evaluator:
    """Scores parameter sets of one strategy on prepared data.

    Args:
        strategy: The strategy.
        data: Per-symbol data from :func:`prepare`.
        objective: A key of :data:`OBJECTIVES`.
        costs: Commission and slippage.
    """

    def __init__(
        self,
        strategy: Strategy,
        data: list[SymbolData],
        *,
        objective: str = "sharpe",
        costs: Costs = DEFAULT_COSTS,
    ) -> None:
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; known: {sorted(OBJECTIVES)}")
        self.strategy = strategy
        self.data = data
        self.objective = objective
        self.metrics = OBJECTIVES[objective]
        self.costs = costs
        self._caches = {d.symbol: IndicatorCache(d.bars) for d in data}

    @property
    def n_steps(self) -> int:
        """Walk-forward steps per evaluation."""
        return len(self.data[0].step_ends)

    def _run(self, d: SymbolData, targets: np.ndarray, lo: int, hi: int) -> Any:
        return run_backtest(
            d.bars.iloc[lo:hi],
            targets[lo:hi],
            costs=self.costs,
            periods_per_year=d.periods_per_year,
        )

    def _worst_regime(self, d: SymbolData, result: Any, hi: int) -> float:
        if d.labels is None:
            return float("nan")
        table = metrics_by_regime(result, d.labels.iloc[:hi])
        table = table[table["n_bars"] >= MIN_REGIME_BARS]
        return float(table["sharpe"].min()) if len(table) else float(result.metrics["sharpe"])

    def _step(self, targets: dict[str, np.ndarray], k: int) -> tuple[dict[str, float], list]:
        rows, results = [], []
        worst = []
        for d in self.data:
            hi = d.step_ends[k]
            res = self._run(d, targets[d.symbol], 0, hi)
            results.append(res)
            rows.append(dict(res.metrics))
            if self.objective == "regime_robust":
                worst.append(self._worst_regime(d, res, hi))
        metrics = _average(rows)
        if worst:
            metrics["worst_regime_sharpe"] = float(min(worst))
        return metrics, results

    def evaluate(
        self,
        params: Mapping[str, Any],
        *,
        report: Callable[[float, int], None] | None = None,
    ) -> Evaluation:
        """Backtests ``params`` step by step in sample, then out of sample.

        Args:
            params: Parameter overrides of the strategy's defaults.
            report: Called with (first objective value, step) after each step but the last;
                it may raise :class:`Pruned` (or Optuna's ``TrialPruned``) to stop.

        Returns:
            The :class:`Evaluation`.
        """
        p = self.strategy.resolve_params(params)
        targets = {d.symbol: self.strategy.targets(self._caches[d.symbol], **p) for d in self.data}
        metrics: dict[str, float] = {}
        results: list = []
        for k in range(self.n_steps):
            metrics, results = self._step(targets, k)
            if report is not None and k < self.n_steps - 1:
                report(finite(metrics[self.metrics[0]]), k)
        values = tuple(finite(metrics[m]) for m in self.metrics)
        metrics.update(_return_moments(results, self.data))
        oos = [
            dict(self._run(d, targets[d.symbol], d.split, len(d.bars)).metrics)
            for d in self.data
            if len(d.bars) - d.split >= 2
        ]
        return Evaluation(p, values, metrics, _average(oos))


def _return_moments(results: list, data: list[SymbolData]) -> dict[str, float]:
    skews, kurts = [], []
    for res in results:
        r = res.returns.iloc[1:]
        s, k = float(r.skew()), float(r.kurt())
        skews.append(s if math.isfinite(s) else 0.0)
        kurts.append(k + 3.0 if math.isfinite(k) else 3.0)
    return {
        "skew": float(np.mean(skews)),
        "kurtosis": float(np.mean(kurts)),
        "n_obs": float(min(d.split for d in data)),
        "periods_per_year": float(np.mean([d.periods_per_year for d in data])),
    }


def prepare(
    bars: pd.DataFrame | Mapping[str, pd.DataFrame],
    *,
    oos_fraction: float = 0.3,
    n_folds: int = 3,
    train_frac: float = 0.5,
    asset_class: str | None = None,
    periods_per_year: float | None = None,
    with_regimes: bool = False,
) -> list[SymbolData]:
    """Splits each symbol's bars into IS and OOS and computes the walk-forward step ends.

    Args:
        bars: One bar frame, or a mapping of symbol to bar frame.
        oos_fraction: Share of each symbol's bars held out at the end (0 for none).
        n_folds: Walk-forward steps (pruning checkpoints) in the IS period.
        train_frac: Share of the IS bars in the first step's warm-up window.
        asset_class: Sets the annualisation ("equity", "crypto", "fx" ...).
        periods_per_year: Explicit annualisation; overrides ``asset_class``.
        with_regimes: Also label regimes (for the regime-robust objective).

    Returns:
        One :class:`SymbolData` per symbol.

    Raises:
        ValueError: For no bars, a bad fraction, or too few bars for the folds.
    """
    frames = {"bars": bars} if isinstance(bars, pd.DataFrame) else dict(bars)
    if not frames:
        raise ValueError("no bars given")
    if not 0.0 <= oos_fraction < 1.0:
        raise ValueError(f"oos_fraction must be in [0, 1), got {oos_fraction!r}")
    ppy = resolve_periods_per_year(periods_per_year, asset_class)
    out = []
    for symbol, frame in frames.items():
        n = len(frame)
        split = n - round(n * oos_fraction)
        if n_folds == 1:
            ends: tuple[int, ...] = (split,)
        else:
            folds = make_folds(
                split, n_folds=n_folds, scheme="anchored", train_frac=train_frac, purge=0
            )
            ends = tuple(f.test_end for f in folds)
        if split < 10:
            raise ValueError(f"{symbol}: {split} in-sample bars are too few")
        labels = regimes(frame)["label"] if with_regimes else None
        out.append(SymbolData(str(symbol), frame, split, ends, labels, ppy))
    return out
