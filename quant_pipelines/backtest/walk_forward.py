"""Walk-forward evaluation: anchored or rolling train/test folds with a purge gap."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from quant_pipelines.backtest.costs import CostModel
from quant_pipelines.backtest.engine import DEFAULT_COSTS, DEFAULT_MAX_LEVERAGE, bar_arrays
from quant_pipelines.backtest.metrics import resolve_periods_per_year
from quant_pipelines.backtest.strategies import Strategy, get_strategy
from quant_pipelines.backtest.sweep import sweep

FOLD_METRICS: tuple[str, ...] = (
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "max_drawdown",
    "n_trades",
    "exposure",
)


@dataclass(frozen=True)
class Fold:
    """Bar positions of one fold: train ``[train_start, train_end)``, test ``[test_start,
    test_end)``, with ``test_start - train_end == purge``."""

    train_start: int
    train_end: int
    test_start: int
    test_end: int


@dataclass(frozen=True)
class WalkForwardResult:
    """Per-fold in-sample (``is_*``) and out-of-sample (``oos_*``) metrics, and a summary.

    Attributes:
        folds: One row per fold: bounds (timestamps), chosen parameters, metrics.
        summary: Means of IS and OOS Sharpe, their ratio (``efficiency``), chained OOS
            return, share of folds with positive OOS return, worst OOS drawdown.
        params: The parameter set used in each fold.
    """

    folds: pd.DataFrame
    summary: dict[str, float]
    params: list[dict[str, Any]] = field(default_factory=list)


def make_folds(
    n_bars: int, *, n_folds: int, scheme: str, train_frac: float, purge: int
) -> list[Fold]:
    """Split ``n_bars`` into walk-forward folds.

    The first ``train_frac`` of the bars is the first training window; the rest is cut into
    ``n_folds`` consecutive test windows. Anchored training windows start at bar 0; rolling ones
    keep the first window's length. ``purge`` bars between train and test are dropped.

    Raises:
        ValueError: For bad arguments or windows shorter than 2 bars.
    """
    if scheme not in ("anchored", "rolling"):
        raise ValueError(f"scheme must be 'anchored' or 'rolling', got {scheme!r}")
    if n_folds < 1 or not 0.0 < train_frac < 1.0 or purge < 0:
        raise ValueError("need n_folds >= 1, 0 < train_frac < 1 and purge >= 0")
    first_test = round(n_bars * train_frac)
    edges = np.linspace(first_test, n_bars, n_folds + 1).round().astype(int)
    length = first_test - purge
    folds = []
    for a, b in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
        end = a - purge
        start = 0 if scheme == "anchored" else max(0, end - length)
        if end - start < 2 or b - a < 2:
            raise ValueError(
                f"fold too short (train {end - start} bars, test {b - a} bars); use fewer "
                "folds, a smaller purge or more bars"
            )
        folds.append(Fold(start, end, a, b))
    return folds


def walk_forward(
    bars: pd.DataFrame,
    strategy: str | Strategy,
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    n_folds: int = 5,
    scheme: str = "anchored",
    train_frac: float = 0.5,
    purge: int = 0,
    objective: str = "sharpe",
    costs: CostModel = DEFAULT_COSTS,
    initial_equity: float = 100_000.0,
    periods_per_year: float | None = None,
    asset_class: str | None = None,
    max_leverage: float = DEFAULT_MAX_LEVERAGE,
) -> WalkForwardResult:
    """Evaluate a strategy on walk-forward folds.

    With one parameter mapping, the same parameters are scored in and out of sample. With a
    sequence of mappings, each fold picks the set with the best in-sample ``objective`` (via
    :func:`sweep`) and scores it out of sample. Indicators are computed on the whole history
    (they are causal, so bar t only sees bars <= t); each window is backtested from flat with
    ``initial_equity``.

    Args:
        bars: Bars in the project's schema.
        strategy: Strategy name or instance.
        params: One parameter mapping, or candidates to select from in each fold.
        n_folds: Number of test windows.
        scheme: "anchored" (train from bar 0) or "rolling" (fixed-length train window).
        train_frac: Fraction of bars in the first training window.
        purge: Bars dropped between each train and test window.
        objective: Metric maximised in-sample when selecting among candidates.
        costs: Commission and slippage.
        initial_equity: Starting cash of every window.
        periods_per_year: Annualisation factor; overrides ``asset_class``.
        asset_class: "equity", "crypto", "fx", ...
        max_leverage: Exposure bound.

    Returns:
        The :class:`WalkForwardResult`.

    Raises:
        ValueError: On bad fold arguments or an unknown objective.
    """
    strat = get_strategy(strategy)
    bar_arrays(bars)
    candidates = [params] if isinstance(params, Mapping) else list(params)
    if not candidates:
        raise ValueError("params is empty")
    ppy = resolve_periods_per_year(periods_per_year, asset_class)
    kw: dict[str, Any] = {
        "costs": costs,
        "initial_equity": initial_equity,
        "periods_per_year": ppy,
        "max_leverage": max_leverage,
    }
    rows, chosen = [], []
    for i, f in enumerate(
        make_folds(len(bars), n_folds=n_folds, scheme=scheme, train_frac=train_frac, purge=purge)
    ):
        train = sweep(bars, strat, candidates, eval_range=(f.train_start, f.train_end), **kw)
        if objective not in train.columns:
            raise ValueError(f"unknown objective {objective!r}")
        best = int(train[objective].to_numpy().argmax())
        p = strat.resolve_params(candidates[best])
        test = sweep(bars, strat, [p], eval_range=(f.test_start, f.test_end), **kw)
        row: dict[str, Any] = {
            "fold": i,
            "train_start": bars.index[f.train_start],
            "train_end": bars.index[f.train_end - 1],
            "test_start": bars.index[f.test_start],
            "test_end": bars.index[f.test_end - 1],
            "params": p,
        }
        row.update({f"is_{k}": train[k].iloc[best] for k in FOLD_METRICS})
        row.update({f"oos_{k}": test[k].iloc[0] for k in FOLD_METRICS})
        rows.append(row)
        chosen.append(p)
    folds = pd.DataFrame(rows).set_index("fold")
    return WalkForwardResult(folds, _summary(folds), chosen)


def _summary(folds: pd.DataFrame) -> dict[str, float]:
    is_sharpe = float(folds["is_sharpe"].mean())
    oos_sharpe = float(folds["oos_sharpe"].mean())
    return {
        "n_folds": float(len(folds)),
        "is_sharpe_mean": is_sharpe,
        "oos_sharpe_mean": oos_sharpe,
        "efficiency": oos_sharpe / is_sharpe if is_sharpe > 0 else 0.0,
        "oos_total_return": float(np.prod(1.0 + folds["oos_total_return"].to_numpy()) - 1.0),
        "oos_positive_fraction": float((folds["oos_total_return"] > 0).mean()),
        "oos_worst_drawdown": float(folds["oos_max_drawdown"].min()),
    }
