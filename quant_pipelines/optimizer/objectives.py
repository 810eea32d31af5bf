"""Objectives: a strategy's parameters scored in sample, on validation paths and on the holdout.

The bars of each symbol are split in time: the first ``1 - oos_fraction`` is in sample (IS),
the rest is the **holdout**. Targets are computed once on the whole history (strategies are
causal, so the IS targets equal those computed on IS bars alone). An evaluation backtests the
IS bars once and scores three things:

* ``in_sample``: the objective over the whole IS period;
* ``validation``: the objective on each test path of the :class:`Validation` scheme (the
  walk-forward test folds or the CPCV paths, all inside the IS period), averaged over paths.
  This is the value the sampler maximises and the leaderboard ranks by; the running mean after
  each path is what a pruner sees. With no validation (``method="none"``) it is the
  in-sample value;
* ``holdout``: the objective on the holdout bars, backtested from flat. It is recorded, never
  optimised.

With several symbols, metrics are averaged over symbols (trades are summed), and the
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
    metrics_by_regime,
    resolve_periods_per_year,
    run_backtest,
)
from quant_pipelines.backtest.engine import DEFAULT_COSTS
from quant_pipelines.backtest.strategies import IndicatorCache
from quant_pipelines.optimizer._paths import path_metrics, sharpe_moments
from quant_pipelines.optimizer.validation import Path, Validation, validation_paths
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
    """One symbol's bars, IS/holdout split, validation paths and regime labels."""

    symbol: str
    bars: pd.DataFrame
    split: int
    paths: tuple[Path, ...]
    labels: pd.Series | None
    periods_per_year: float


@dataclass(frozen=True)
class Evaluation:
    """The scores of one parameter set.

    Attributes:
        params: The resolved parameters (defaults filled in).
        values: What the sampler maximises: the validation value(s), or the in-sample ones
            without validation paths. Finite.
        is_metrics: IS metrics, averaged over symbols, plus ``worst_regime_sharpe``,
            ``skew``, ``kurtosis`` (non-excess), ``n_obs`` and ``periods_per_year`` of the IS
            returns (for the deflated Sharpe ratio).
        oos_metrics: Holdout metrics averaged over symbols (empty without a holdout).
        in_sample: The objective(s) over the whole IS period.
        validation: The objective(s) averaged over the validation paths (None without paths).
        path_values: The first objective on each validation path.
        holdout: The objective(s) on the holdout (None without a holdout).
    """

    params: dict[str, Any]
    values: tuple[float, ...]
    is_metrics: dict[str, float]
    oos_metrics: dict[str, float]
    in_sample: tuple[float, ...] = ()
    validation: tuple[float, ...] | None = None
    path_values: tuple[float, ...] = ()
    holdout: tuple[float, ...] | None = None

    def scores(self) -> dict[str, Any]:
        """The ``scores`` of a trial record: in-sample, validation and holdout value lists,
        and the first objective on each validation path."""
        return {
            "in_sample": list(self.in_sample),
            "validation": None if self.validation is None else list(self.validation),
            "holdout": None if self.holdout is None else list(self.holdout),
            "paths": list(self.path_values),
        }


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
        #: (each symbol's IS return index, its positions in their union, union length).
        self._aligned: tuple[list[pd.Index], list[np.ndarray], int] | None = None

    @property
    def n_steps(self) -> int:
        """Validation paths per evaluation (pruning steps); 0 without validation."""
        return len(self.data[0].paths)

    @property
    def symbols(self) -> list[str]:
        """The symbols, in input order."""
        return [d.symbol for d in self.data]

    @property
    def periods_per_year(self) -> float:
        """Annualisation (the first symbol's)."""
        return self.data[0].periods_per_year

    def periods(self) -> tuple[list[tuple[Any, Any]], list[tuple[Any, Any]]]:
        """(in-sample, holdout) first and last timestamps, one pair per symbol."""
        is_ = [(d.bars.index[0], d.bars.index[d.split - 1]) for d in self.data]
        oos = [
            (d.bars.index[d.split], d.bars.index[-1]) for d in self.data if d.split < len(d.bars)
        ]
        return is_, oos

    def benchmark_returns(self) -> np.ndarray:
        """Buy-and-hold's in-sample bar returns (bar 0 left out), averaged over symbols."""
        return self.returns_of({d.symbol: np.ones(len(d.bars)) for d in self.data})

    def buy_and_hold_sharpe(self, *, holdout: bool) -> float | None:
        """Buy-and-hold's Sharpe ratio on the in-sample or the holdout bars, averaged over
        symbols (backtested from flat with the study's costs, like the trials)."""
        values = []
        for d in self.data:
            bars = d.bars.iloc[d.split :] if holdout else d.bars.iloc[: d.split]
            if len(bars) < 2:
                continue
            res = run_backtest(
                bars, np.ones(len(bars)), costs=self.costs, periods_per_year=d.periods_per_year
            )
            values.append(float(res.metrics["sharpe"]))
        return float(np.mean(values)) if values else None

    def targets(self, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Target exposures per symbol over the whole history."""
        p = self.strategy.resolve_params(params)
        return {d.symbol: self.strategy.targets(self._caches[d.symbol], **p) for d in self.data}

    def _run(self, d: SymbolData, targets: np.ndarray, lo: int, hi: int) -> Any:
        return run_backtest(
            d.bars.iloc[lo:hi],
            targets[lo:hi],
            costs=self.costs,
            periods_per_year=d.periods_per_year,
        )

    def _worst_regime(self, d: SymbolData, result: Any) -> float:
        if d.labels is None:
            return float("nan")
        table = metrics_by_regime(result, d.labels.iloc[: len(result.returns)])
        table = table[table["n_bars"] >= MIN_REGIME_BARS]
        return float(table["sharpe"].min()) if len(table) else float(result.metrics["sharpe"])

    def _path(self, d: SymbolData, returns: np.ndarray, path: Path) -> dict[str, float]:
        labels = None if d.labels is None else d.labels.to_numpy()
        return path_metrics(
            returns, path, d.periods_per_year, labels=labels, min_regime_bars=MIN_REGIME_BARS
        )

    def in_sample_returns(self, params: Mapping[str, Any]) -> np.ndarray:
        """The IS bar returns of ``params`` (bar 0 left out), averaged over symbols on the
        union of their sessions (a symbol without a bar that day counts 0)."""
        return self.returns_of(self.targets(params))

    def returns_of(self, targets: Mapping[str, np.ndarray]) -> np.ndarray:
        """The IS bar returns of given target exposures per symbol (whole history arrays),
        averaged as in :meth:`in_sample_returns`."""
        series = [self._run(d, targets[d.symbol], 0, d.split).returns.iloc[1:] for d in self.data]
        if len(series) == 1:
            return series[0].to_numpy()
        aligned = self._aligned
        if aligned is None or not all(
            s.index.equals(i) for s, i in zip(series, aligned[0], strict=True)
        ):
            # The first call aligns with pandas; the sessions are the same on every later
            # call (same bars, same split), so those reuse its positions.
            union = pd.concat(series, axis=1, sort=True).index
            self._aligned = aligned = (
                [s.index for s in series],
                [union.get_indexer(s.index) for s in series],
                len(union),
            )
        _, positions, n = aligned
        table = np.zeros((len(series), n))  # a symbol without a bar that day counts 0
        for row, s, pos in zip(table, series, positions, strict=True):
            row[pos] = s.to_numpy()
        np.nan_to_num(table, copy=False, nan=0.0, posinf=np.inf, neginf=-np.inf)
        return table.sum(axis=0) / len(series)

    def evaluate(
        self,
        params: Mapping[str, Any],
        *,
        report: Callable[[float, int], None] | None = None,
        partial: Callable[[dict[str, float]], None] | None = None,
    ) -> Evaluation:
        """Backtests ``params`` in sample, scores the validation paths, then the holdout.

        Args:
            params: Parameter overrides of the strategy's defaults.
            report: Called with (running mean of the first objective over the paths so far,
                step) after each validation path but the last; it may raise :class:`Pruned`
                (or Optuna's ``TrialPruned``) to stop.
            partial: Called before each ``report`` with the per-period-free statistics of
                the validation bars seen so far (``sharpe`` annualised, ``n_obs``, ``skew``,
                ``kurtosis``, ``periods_per_year``, ``step``), so that a pruned trial still
                counts in the deflated Sharpe ratio with its own number of observations.

        Returns:
            The :class:`Evaluation`.
        """
        p = self.strategy.resolve_params(params)
        targets = self.targets(p)
        is_results = [self._run(d, targets[d.symbol], 0, d.split) for d in self.data]
        is_returns = [r.returns.to_numpy() for r in is_results]
        first = self.metrics[0]
        per_path: list[dict[str, float]] = []
        for k in range(self.n_steps):
            rows = [
                self._path(d, r, d.paths[k]) for d, r in zip(self.data, is_returns, strict=True)
            ]
            per_path.append(_average(rows))
            if k < self.n_steps - 1 and (report is not None or partial is not None):
                if partial is not None:
                    partial(self._seen(is_returns, k))
                if report is not None:
                    running = float(np.mean([finite(m[first]) for m in per_path]))
                    report(running, k)
        is_metrics = _average([dict(r.metrics) for r in is_results])
        if self.objective == "regime_robust":
            worst = [self._worst_regime(d, r) for d, r in zip(self.data, is_results, strict=True)]
            is_metrics["worst_regime_sharpe"] = float(min(worst))
        in_sample = tuple(finite(is_metrics[m]) for m in self.metrics)
        validation = None
        if per_path:
            validation = tuple(
                float(np.mean([finite(pm[m]) for pm in per_path])) for m in self.metrics
            )
        is_metrics.update(_return_moments(is_results, self.data))
        holdout_rows = []
        for d in self.data:
            if len(d.bars) - d.split >= 2:
                res = self._run(d, targets[d.symbol], d.split, len(d.bars))
                row = dict(res.metrics)
                if self.objective == "regime_robust":
                    row["worst_regime_sharpe"] = self._holdout_worst(d, res)
                holdout_rows.append(row)
        oos = _average(holdout_rows)
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

    def _holdout_worst(self, d: SymbolData, result: Any) -> float:
        if d.labels is None:
            return float(result.metrics["sharpe"])
        labels = d.labels.iloc[d.split :]
        table = metrics_by_regime(result, labels)
        table = table[table["n_bars"] >= MIN_REGIME_BARS]
        return float(table["sharpe"].min()) if len(table) else float(result.metrics["sharpe"])

    def _seen(self, is_returns: list[np.ndarray], k: int) -> dict[str, float]:
        """Sharpe statistics of the validation bars of paths 0..k, averaged over symbols."""
        rows = []
        for d, r in zip(self.data, is_returns, strict=True):
            bars = [rng for path in d.paths[: k + 1] for rng in path]
            rows.append(sharpe_moments(r, tuple(bars), d.periods_per_year))
        out = _average(rows)
        out["n_obs"] = float(min(row["n_obs"] for row in rows))
        out["step"] = float(k)
        return out


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
    validation: Validation | None = None,
    asset_class: str | None = None,
    periods_per_year: float | None = None,
    with_regimes: bool = False,
) -> list[SymbolData]:
    """Splits each symbol's bars into IS and holdout and computes the validation paths.

    Args:
        bars: One bar frame, or a mapping of symbol to bar frame.
        oos_fraction: Share of each symbol's bars held out at the end (0 for none).
        n_folds: Walk-forward test folds when ``validation`` is None (0 for none).
        train_frac: Share of the IS bars before the first fold when ``validation`` is None.
        validation: The validation scheme (overrides ``n_folds`` and ``train_frac``).
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
    if validation is None:
        validation = (
            Validation(method="walk_forward", n_folds=n_folds, train_frac=train_frac)
            if n_folds > 0
            else Validation(method="none")
        )
    ppy = resolve_periods_per_year(periods_per_year, asset_class)
    out = []
    for symbol, frame in frames.items():
        n = len(frame)
        split = n - round(n * oos_fraction)
        if split < 10:
            raise ValueError(f"{symbol}: {split} in-sample bars are too few")
        try:
            paths = validation_paths(validation, split)
        except ValueError as exc:
            raise ValueError(f"{symbol}: {split} in-sample bars: {exc}") from None
        labels = regimes(frame)["label"] if with_regimes else None
        out.append(SymbolData(str(symbol), frame, split, paths, labels, ppy))
    return out
