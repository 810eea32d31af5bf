"""``sweep``: many parameter sets of one strategy, evaluated by one compiled pass per set."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from quant_pipelines.backtest._assemble import INT_METRICS, METRIC_KEYS
from quant_pipelines.backtest._sweep_core import sweep_metrics
from quant_pipelines.backtest.costs import CostModel
from quant_pipelines.backtest.engine import (
    DEFAULT_COSTS,
    DEFAULT_MAX_LEVERAGE,
    bar_arrays,
    cost_terms,
)
from quant_pipelines.backtest.metrics import resolve_periods_per_year
from quant_pipelines.backtest.strategies import IndicatorCache, Strategy, get_strategy


def sweep(
    bars: pd.DataFrame,
    strategy: str | Strategy,
    param_sets: Sequence[Mapping[str, Any]],
    *,
    costs: CostModel = DEFAULT_COSTS,
    initial_equity: float = 100_000.0,
    periods_per_year: float | None = None,
    asset_class: str | None = None,
    max_leverage: float = DEFAULT_MAX_LEVERAGE,
    eval_range: tuple[int, int] | None = None,
    block_size: int = 64,
) -> pd.DataFrame:
    """Backtest many parameter sets of a strategy at once and tabulate their metrics.

    Targets come from ``strategy.targets_block`` (indicators cached per window), ``block_size``
    sets at a time; a compiled kernel (``_sweep_kernel``) then runs each set's fills, ruin rule
    and every metric in one pass over the bars. Every row equals
    ``run_backtest(bars, strategy.positions(bars, **params), ...).metrics`` to floating-point
    rounding (ruined sets included).

    Args:
        bars: Bars in the project's schema.
        strategy: A strategy name or instance.
        param_sets: Parameter overrides, one mapping per set (defaults fill the rest).
        costs: The cost model (flat, or volume-share: its trailing ADV and volatility are
            computed on the evaluated bars, as ``run_backtest`` on them does).
        initial_equity: Starting cash.
        periods_per_year: Annualisation factor; overrides ``asset_class``.
        asset_class: "equity", "crypto", "fx", ... (252 when both are None).
        max_leverage: Targets are clipped to ``[-max_leverage, max_leverage]``.
        eval_range: ``(start, end)`` bar positions: backtest only ``bars[start:end]``, with the
            earlier bars serving as indicator history (walk-forward folds use this). Equal to
            ``run_backtest(bars[start:end], positions[start:end])``.
        block_size: Sets per target block (memory ~ ``8 * n_bars * block_size`` bytes).

    Returns:
        One row per parameter set (index = position in ``param_sets``): the resolved parameters,
        then the metric columns of ``BacktestResult.metrics``.

    Raises:
        UnknownStrategyError: For an unknown strategy name.
        ValueError: On invalid bars or parameters, or NaN targets.
    """
    strat = get_strategy(strategy)
    sets = [strat.resolve_params(p) for p in param_sets]
    start, end = (0, len(bars)) if eval_range is None else eval_range
    if not 0 <= start < end <= len(bars):
        raise ValueError(f"eval_range {eval_range} is not a non-empty range of {len(bars)} bars")
    history = bars.iloc[:end]
    window = bars.iloc[start:end]
    o, c = bar_arrays(window)
    terms = cost_terms(costs, window, c)
    if terms is None:
        terms = costs.terms(None, c)
    ppy = resolve_periods_per_year(periods_per_year, asset_class)
    if not (np.isfinite(max_leverage) and max_leverage > 0):
        raise ValueError(f"max_leverage must be a positive number, got {max_leverage!r}")
    if not (np.isfinite(initial_equity) and initial_equity > 0):
        raise ValueError(f"initial_equity must be positive, got {initial_equity!r}")
    if not sets:
        empty = pd.DataFrame([], index=pd.RangeIndex(0))
        return pd.concat([empty, pd.DataFrame(columns=list(METRIC_KEYS))], axis=1)
    values = sweep_metrics(
        o,
        c,
        strat,
        IndicatorCache(history),
        sets,
        start=start,
        costs=costs,
        terms=terms,
        initial_equity=float(initial_equity),
        periods_per_year=ppy,
        max_leverage=float(max_leverage),
        block_size=block_size,
    )
    return _table(sets, values)


def _table(sets: list[dict[str, Any]], values: np.ndarray) -> pd.DataFrame:
    """Parameters, then metrics, one row per set (column-wise: cheaper than from the dicts)."""
    index = pd.RangeIndex(len(sets))
    metrics = {
        k: values[:, j].astype(np.int64) if k in INT_METRICS else values[:, j]
        for j, k in enumerate(METRIC_KEYS)
    }
    keys = sets[0].keys()
    if all(p.keys() == keys for p in sets) and not keys & metrics.keys():
        return pd.DataFrame({**{k: [p[k] for p in sets] for k in keys}, **metrics}, index=index)
    return pd.concat([pd.DataFrame(sets, index=index), pd.DataFrame(metrics, index=index)], axis=1)
