"""Assemble the metric table of one or many runs from equity, change points and end states."""

from __future__ import annotations

import numpy as np

from quant_pipelines.backtest._core import ChangePoints
from quant_pipelines.backtest._keys import INT_METRICS, METRIC_KEYS
from quant_pipelines.backtest._stats import Workspace, equity_stats
from quant_pipelines.backtest._trades import RunEnds, TradeArrays, extract_trades, trade_stats

__all__ = ["INT_METRICS", "METRIC_KEYS", "collect_metrics"]


def collect_metrics(
    equity: np.ndarray,
    cps: ChangePoints,
    ends: RunEnds,
    exposure: np.ndarray,
    *,
    initial_equity: float,
    periods_per_year: float,
    closes: np.ndarray,
    safe: bool,
    work: Workspace | None = None,
) -> tuple[dict[str, np.ndarray], TradeArrays]:
    """Every metric of :data:`METRIC_KEYS`, one value per run, plus the trades.

    Args:
        equity: Equity matrix ``(n_bars, n_runs)``.
        cps: Change points of all runs.
        ends: End states of all runs.
        exposure: Fraction of bars with a non-zero holding, per run.
        initial_equity: Starting equity.
        periods_per_year: Annualisation factor.
        closes: Close prices (for buy and hold).
        safe: Whether runs may contain ruin (zero equity).
        work: Buffers reused across calls (sweep blocks).

    Returns:
        ``(metrics, trades)``.
    """
    n, w = equity.shape
    out = equity_stats(equity, initial_equity, periods_per_year, safe=safe, work=work)
    trades = extract_trades(cps, ends, n)
    out.update(trade_stats(trades.run, trades.pnl, w))
    out["exposure"] = exposure
    du = np.abs(cps.new - cps.old)
    with np.errstate(invalid="ignore", divide="ignore"):
        traded = np.where(cps.equity > 0, du * cps.price / cps.equity, 0.0)
    years = (n - 1) / periods_per_year
    turn = np.bincount(cps.run, weights=traded, minlength=w)
    out["turnover"] = turn / years if years > 0 else np.zeros(w)
    out["buy_and_hold_return"] = np.full(w, closes[-1] / closes[0] - 1.0)
    out["final_equity"] = equity[-1].copy()
    cost = cps.commission + du * np.abs(cps.price - cps.open)
    out["total_costs"] = np.bincount(cps.run, weights=cost, minlength=w)
    return {k: out[k] for k in METRIC_KEYS}, trades


def metrics_dict(arrays: dict[str, np.ndarray], i: int) -> dict[str, float | int]:
    """Run ``i``'s metrics as plain Python numbers (ints for counts)."""
    return {k: (int(v[i]) if k in INT_METRICS else float(v[i])) for k, v in arrays.items()}
