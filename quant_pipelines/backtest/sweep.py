"""``sweep``: many parameter sets of one strategy, evaluated in one vectorised pass."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from quant_pipelines.backtest._assemble import INT_METRICS, METRIC_KEYS, collect_metrics
from quant_pipelines.backtest._core import ChangePoints
from quant_pipelines.backtest._stats import Workspace
from quant_pipelines.backtest._sweep_core import RangeExtrema, batched_fills, segment_matrix
from quant_pipelines.backtest._trades import RunEnds
from quant_pipelines.backtest.engine import (
    DEFAULT_COSTS,
    DEFAULT_MAX_LEVERAGE,
    bar_arrays,
    run_backtest,
)
from quant_pipelines.backtest.fills import Costs
from quant_pipelines.backtest.metrics import resolve_periods_per_year
from quant_pipelines.backtest.strategies import IndicatorCache, Strategy, get_strategy


def sweep(
    bars: pd.DataFrame,
    strategy: str | Strategy,
    param_sets: Sequence[Mapping[str, Any]],
    *,
    costs: Costs = DEFAULT_COSTS,
    initial_equity: float = 100_000.0,
    periods_per_year: float | None = None,
    asset_class: str | None = None,
    max_leverage: float = DEFAULT_MAX_LEVERAGE,
    eval_range: tuple[int, int] | None = None,
    block_size: int = 64,
) -> pd.DataFrame:
    """Backtest many parameter sets of a strategy at once and tabulate their metrics.

    Targets of all sets form an ``(n_sets, n_bars)`` matrix. Fills are batched across sets by
    change-point rank, and equity and metrics are computed on ``(n_bars, block_size)`` blocks.
    Every row equals ``run_backtest(bars, strategy.positions(bars, **params), ...).metrics`` to
    floating-point rounding. Sets whose equity could reach zero are re-run with
    :func:`run_backtest` so the ruin rule applies exactly.

    Args:
        bars: Bars in the project's schema.
        strategy: A strategy name or instance.
        param_sets: Parameter overrides, one mapping per set (defaults fill the rest).
        costs: Commission and slippage.
        initial_equity: Starting cash.
        periods_per_year: Annualisation factor; overrides ``asset_class``.
        asset_class: "equity", "crypto", "fx", ... (252 when both are None).
        max_leverage: Targets are clipped to ``[-max_leverage, max_leverage]``.
        eval_range: ``(start, end)`` bar positions: backtest only ``bars[start:end]``, with the
            earlier bars serving as indicator history (walk-forward folds use this). Equal to
            ``run_backtest(bars[start:end], positions[start:end])``.
        block_size: Sets per equity block (memory ~ ``3 * 8 * n_bars * block_size`` bytes).

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
    ppy = resolve_periods_per_year(periods_per_year, asset_class)
    if not (np.isfinite(max_leverage) and max_leverage > 0):
        raise ValueError(f"max_leverage must be a positive number, got {max_leverage!r}")
    if not (np.isfinite(initial_equity) and initial_equity > 0):
        raise ValueError(f"initial_equity must be positive, got {initial_equity!r}")
    n_sets = len(sets)
    params = pd.DataFrame(sets, index=pd.RangeIndex(n_sets))
    if n_sets == 0:
        return pd.concat([params, pd.DataFrame(columns=list(METRIC_KEYS))], axis=1)
    cache = IndicatorCache(history)
    run, bar, target = _change_points(strat, cache, sets, start, max_leverage)
    kw = {"commission": costs.commission, "slippage": costs.slippage}
    old_u, new_u, new_c, eq, price, comm = batched_fills(
        o, run, bar, target, n_sets, initial_equity=float(initial_equity), **kw
    )
    every = ChangePoints(run, bar, old_u, new_u, new_c, eq, o[bar], price, comm)
    extrema = RangeExtrema(o)
    work = Workspace(len(o), min(block_size, n_sets))
    columns: dict[str, list[np.ndarray]] = {k: [] for k in METRIC_KEYS}
    ruined: list[int] = []
    bounds = np.searchsorted(run, np.arange(0, n_sets + block_size, block_size))
    for b, lo in enumerate(range(0, n_sets, block_size)):
        w = min(block_size, n_sets - lo)
        sl = slice(bounds[b], bounds[b + 1])
        cps = every.take(sl)
        cps = cps._replace(run=cps.run - lo)
        arrays, flags = _block_metrics(o, c, cps, w, float(initial_equity), ppy, extrema, work)
        ruined.extend((np.flatnonzero(flags) + lo).tolist())
        for k in METRIC_KEYS:
            columns[k].append(arrays[k])
    metrics = pd.DataFrame({k: np.concatenate(v) for k, v in columns.items()})
    for i in ruined:
        res = run_backtest(
            window,
            strat.positions(history, **sets[i]).iloc[start:],
            costs=costs,
            initial_equity=initial_equity,
            periods_per_year=ppy,
            max_leverage=max_leverage,
        )
        metrics.loc[i, list(METRIC_KEYS)] = [res.metrics[k] for k in METRIC_KEYS]
    for k in INT_METRICS:
        metrics[k] = metrics[k].astype(np.int64)
    return pd.concat([params, metrics], axis=1)


def _change_points(
    strat: Strategy,
    cache: IndicatorCache,
    sets: list[dict[str, Any]],
    start: int,
    max_leverage: float,
    block: int = 256,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run, bar and target of every change point of every set (ordered by run, then bar).

    Targets are computed on the cache's full history and evaluated from bar ``start`` on.
    """
    n = cache.n - start
    runs, bars, targets = [], [], []
    for lo in range(0, len(sets), block):
        chunk = sets[lo : lo + block]
        t = strat.targets_block(cache, chunk)[:, start:]
        if not (t.min() >= -max_leverage and t.max() <= max_leverage):  # NaN fails both
            if np.isnan(t).any():
                bad = int(np.flatnonzero(np.isnan(t).any(axis=1))[0])
                raise ValueError(f"{strat.name} produced NaN targets for {chunk[bad]}")
            np.clip(t, -max_leverage, max_leverage, out=t)
        # The in-force target at bar k >= 1 is t[k-1]; it changes where t[k-1] != t[k-2],
        # with t[-1] = 0 (flat before the first decision).
        chg = np.empty((len(chunk), n - 1), dtype=bool)
        if n > 1:
            np.not_equal(t[:, 0], 0.0, out=chg[:, 0])
            np.not_equal(t[:, 1 : n - 1], t[:, : n - 2], out=chg[:, 1:])
        r, k = np.divmod(np.flatnonzero(chg), max(n - 1, 1))
        runs.append(r + lo)
        bars.append(k + 1)
        targets.append(t[r, k])
    return np.concatenate(runs), np.concatenate(bars), np.concatenate(targets)


def _block_metrics(
    o: np.ndarray,
    c: np.ndarray,
    cps: ChangePoints,
    w: int,
    initial_equity: float,
    ppy: float,
    extrema: RangeExtrema,
    work: Workspace,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Metrics of ``w`` runs from their change points, and flags of runs that may be ruined."""
    n = len(o)
    seg_run, seg_start, seg_len, seg_u, seg_c = segment_matrix(
        cps.run, cps.bar, cps.new, cps.cash, w, n, initial_equity
    )
    by_run = np.multiply(np.repeat(seg_u, seg_len).reshape(w, n), c, out=work.f(0, w, n))
    by_run += np.repeat(seg_c, seg_len).reshape(w, n)
    equity = work.f(4, n, w)  # time on axis 0
    np.copyto(equity, by_run.T)
    # Ruin screen (runs flagged here are re-run exactly): a close at or below zero shows as a
    # drawdown <= -100% below; an open at or below zero is caught per segment at the worst open
    # between the segment's start and the next fill.
    flags = np.zeros(w, dtype=bool)
    lo = seg_start + 1
    hi = np.minimum(seg_start + seg_len, n - 1)
    live = (seg_u != 0.0) & (lo <= hi)
    if live.any():
        mins, maxs = extrema.query(lo[live], hi[live])
        u = seg_u[live]
        worst = seg_c[live] + u * np.where(u > 0, mins, maxs)
        flags |= np.bincount(seg_run[live], weights=worst <= 0.0, minlength=w) > 0
    held = np.bincount(seg_run, weights=seg_len * (seg_u != 0.0), minlength=w) / n
    last = np.cumsum(np.bincount(seg_run, minlength=w)) - 1
    ends = RunEnds(
        seg_u[last],
        equity[-1].copy(),
        np.full(w, n - 1),
        np.full(w, n),
        np.full(w, c[-1]),
        np.ones(w, dtype=bool),
    )
    arrays, _ = collect_metrics(
        equity,
        cps,
        ends,
        held,
        initial_equity=initial_equity,
        periods_per_year=ppy,
        closes=c,
        safe=False,
        work=work,
    )
    flags |= ~(arrays["max_drawdown"] > -1.0)
    return arrays, flags
