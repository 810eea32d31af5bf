"""Performance metrics as pure functions of equity curves, and their breakdown by regime.

Definitions (``r_t = E_t / E_{t-1} - 1`` over the ``m = n - 1`` bar-to-bar returns, ``P`` =
periods per year; full list in ``docs/backtest.md``):

* ``total_return = E_end / E_0 - 1``; ``cagr = (E_end / E_0) ** (P / m) - 1`` (-1 if ruined);
* ``annual_volatility = std(r, ddof=1) * sqrt(P)``; ``sharpe = mean(r) / std(r) * sqrt(P)``;
* ``sortino = mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(P)``; ``calmar = cagr / |max_drawdown|``;
* ``max_drawdown = min(E_t / max_{s<=t} E_s) - 1`` (<= 0); ``max_drawdown_duration`` = longest
  run of bars below the running peak.

Ratios with a zero denominator are 0, or +inf when the numerator is positive.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from quant_pipelines.backtest._stats import equity_stats
from quant_pipelines.backtest._trades import trade_stats
from quant_pipelines.backtest.result import BacktestResult

PERIODS_PER_YEAR: Mapping[str, float] = {
    "equity": 252.0,
    "etf": 252.0,
    "index": 252.0,
    "future": 252.0,
    "crypto": 365.0,
    "fx": 260.0,
}
"""Bars per year of daily data by asset class (crypto trades every day, FX on weekdays)."""

DEFAULT_PERIODS_PER_YEAR = 252.0


def resolve_periods_per_year(periods_per_year: float | None, asset_class: str | None) -> float:
    """The annualisation factor: explicit value, else by asset class, else 252.

    Args:
        periods_per_year: Explicit bars per year, wins when given.
        asset_class: Key of :data:`PERIODS_PER_YEAR` (case-insensitive).

    Returns:
        Bars per year.

    Raises:
        ValueError: For a non-positive value or an unknown asset class.
    """
    if periods_per_year is not None:
        if not (np.isfinite(periods_per_year) and periods_per_year > 0):
            raise ValueError(f"periods_per_year must be positive, got {periods_per_year!r}")
        return float(periods_per_year)
    if asset_class is None:
        return DEFAULT_PERIODS_PER_YEAR
    key = asset_class.lower()
    if key not in PERIODS_PER_YEAR:
        raise ValueError(
            f"unknown asset_class {asset_class!r}; known: {sorted(PERIODS_PER_YEAR)} "
            "(or pass periods_per_year)"
        )
    return PERIODS_PER_YEAR[key]


def compute_metrics(
    equity: pd.Series | np.ndarray,
    *,
    periods_per_year: float = DEFAULT_PERIODS_PER_YEAR,
    initial_equity: float | None = None,
    trades: pd.DataFrame | None = None,
) -> dict[str, float]:
    """Return, risk and drawdown metrics of an equity curve (plus trade metrics if given).

    Args:
        equity: Equity marked at each bar (finite, >= 0).
        periods_per_year: Bars per year.
        initial_equity: Equity before the first bar; the first value when None.
        trades: A trades frame with a ``pnl`` column, for n_trades, win_rate, profit_factor.

    Returns:
        Metric name to value.

    Raises:
        ValueError: For an empty or non-finite curve.
    """
    e = np.asarray(equity, dtype=np.float64)
    if e.ndim != 1 or len(e) == 0 or not np.isfinite(e).all() or (e < 0).any():
        raise ValueError("equity must be a non-empty 1-D array of finite values >= 0")
    start = float(e[0]) if initial_equity is None else float(initial_equity)
    if start <= 0:
        raise ValueError("initial equity must be positive")
    stats = equity_stats(e[:, None], start, float(periods_per_year), safe=True)
    out = {k: float(v[0]) for k, v in stats.items()}
    out["max_drawdown_duration"] = int(out["max_drawdown_duration"])
    if trades is not None:
        pnl = np.asarray(trades["pnl"], dtype=np.float64)
        ts = trade_stats(np.zeros(len(pnl), dtype=np.int64), pnl, 1)
        out.update({k: float(v[0]) for k, v in ts.items()})
        out["n_trades"] = int(out["n_trades"])
    return out


def metrics_by_regime(result: BacktestResult, labels: pd.Series | pd.DataFrame) -> pd.DataFrame:
    """Break a backtest's main metrics down by regime label.

    Bar t's return (close t-1 to close t) is attributed to the label of bar t. Metrics per label
    are computed on the label's returns chained together (as if only those bars existed).

    Args:
        result: A :class:`~quant_pipelines.backtest.BacktestResult`.
        labels: Labels on the result's index: a Series, or a frame with a ``label`` column
            (e.g. the output of :func:`quant_pipelines.signals.regimes`).

    Returns:
        One row per label (sorted) with ``n_bars``, ``fraction``, ``total_return``,
        ``annual_return``, ``annual_volatility``, ``sharpe``, ``sortino``, ``max_drawdown``,
        ``hit_rate`` (share of positive returns among non-zero ones) and ``exposure``.

    Raises:
        ValueError: If the labels are not on the result's index.
    """
    lab = labels["label"] if isinstance(labels, pd.DataFrame) else labels
    returns = result.returns
    if not lab.index.equals(returns.index):
        raise ValueError("labels must be on the backtest's index (use labels.reindex(...))")
    ppy = float(result.periods_per_year)
    held = result.units.to_numpy() != 0.0
    r_all = returns.to_numpy()
    lab_values = lab.astype(str).to_numpy()
    rows = []
    for name in sorted(set(lab_values)):
        mask = lab_values == name
        r = r_all[mask]
        curve = np.concatenate(([1.0], np.cumprod(1.0 + r)))
        stats = equity_stats(curve[:, None], 1.0, ppy, safe=True)
        nz = r[r != 0.0]
        rows.append(
            {
                "label": name,
                "n_bars": int(mask.sum()),
                "fraction": float(mask.mean()),
                "total_return": float(stats["total_return"][0]),
                "annual_return": float(np.mean(r) * ppy),
                "annual_volatility": float(stats["annual_volatility"][0]),
                "sharpe": float(stats["sharpe"][0]),
                "sortino": float(stats["sortino"][0]),
                "max_drawdown": float(stats["max_drawdown"][0]),
                "hit_rate": float((nz > 0).mean()) if len(nz) else 0.0,
                "exposure": float(held[mask].mean()),
            }
        )
    return pd.DataFrame(rows).set_index("label")
