"""Metrics of a trial on a validation path: its bar returns over some bar ranges, chained."""

from __future__ import annotations

import math

import numpy as np

from quant_pipelines.backtest._stats import equity_stats

#: Bar ranges ``(lo, hi)``, half-open, in time order.
Ranges = tuple[tuple[int, int], ...]


def chained(returns: np.ndarray, ranges: Ranges) -> np.ndarray:
    """The bar returns of ``ranges`` concatenated (bar t's return is close t-1 to close t)."""
    if len(ranges) == 1:
        lo, hi = ranges[0]
        return returns[lo:hi]
    return np.concatenate([returns[lo:hi] for lo, hi in ranges])


def path_metrics(
    returns: np.ndarray,
    ranges: Ranges,
    periods_per_year: float,
    *,
    labels: np.ndarray | None = None,
    min_regime_bars: int = 20,
) -> dict[str, float]:
    """Return, risk and drawdown metrics of the returns of ``ranges`` chained together.

    Args:
        returns: A backtest's bar returns (``BacktestResult.returns``).
        ranges: The path's bar ranges.
        periods_per_year: Annualisation.
        labels: Regime label per bar, for ``worst_regime_sharpe`` (the worst Sharpe ratio
            among the regimes with at least ``min_regime_bars`` bars on the path).
        min_regime_bars: See ``labels``.

    Returns:
        ``total_return``, ``cagr``, ``annual_volatility``, ``sharpe``, ``sortino``, ``calmar``,
        ``max_drawdown``, ``max_drawdown_duration`` and, with labels, ``worst_regime_sharpe``.
    """
    r = chained(returns, ranges)
    curve = np.concatenate(([1.0], np.cumprod(1.0 + r)))
    out = {k: float(v[0]) for k, v in equity_stats(curve[:, None], 1.0, periods_per_year).items()}
    if labels is not None:
        lab = chained(labels, ranges)
        worst = math.inf
        for name in set(lab.tolist()):
            mask = lab == name
            if mask.sum() < min_regime_bars:
                continue
            sub = np.concatenate(([1.0], np.cumprod(1.0 + r[mask])))
            worst = min(
                worst, float(equity_stats(sub[:, None], 1.0, periods_per_year)["sharpe"][0])
            )
        out["worst_regime_sharpe"] = out["sharpe"] if worst == math.inf else worst
    return out


def sharpe_moments(
    returns: np.ndarray, ranges: Ranges, periods_per_year: float
) -> dict[str, float]:
    """Annualised Sharpe ratio, skewness, kurtosis (non-excess) and count of the returns of
    ``ranges`` (for a pruned trial's deflated Sharpe ratio)."""
    r = chained(returns, ranges)
    n = len(r)
    std = float(r.std(ddof=1)) if n > 1 else 0.0
    mean = float(r.mean()) if n else 0.0
    sharpe = mean / std * math.sqrt(periods_per_year) if std > 0 else 0.0
    if n > 2 and std > 0:
        z = (r - mean) / r.std(ddof=0)
        skew, kurt = float(np.mean(z**3)), float(np.mean(z**4))
    else:
        skew, kurt = 0.0, 3.0
    return {
        "sharpe": sharpe,
        "skew": skew,
        "kurtosis": kurt,
        "n_obs": float(n),
        "periods_per_year": float(periods_per_year),
    }
