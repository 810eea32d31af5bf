"""Causal regime labels: trend (up / down / range) × volatility (calm / turbulent).

Method (measured accuracy in ``docs/signals.md``): two independent hidden Markov chains, each
run as a *forward filter* (Hamilton filter), so the label at bar t uses returns up to t only.

* Scale: ``s_t`` = rolling median of ``|r|`` over ``baseline_window`` bars / 0.6745, a robust
  "normal" daily volatility (``r`` = log close-to-close returns).
* Volatility chain, states calm / turbulent: returns are Student-t (``dof``) with standard
  deviation ``s_t * vol_levels[state]``; states persist ``vol_days`` bars on average.
* Trend chain, states up / down / range: returns are Student-t with mean ``+drift * s_t``,
  ``-drift * s_t`` or 0 and the standard deviation of an EWMA (half-life ``vol_halflife``);
  states persist ``trend_days`` bars on average.
* The label of each chain is its most probable filtered state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

TRENDS: tuple[str, ...] = ("up", "down", "range")
VOLATILITIES: tuple[str, ...] = ("calm", "turbulent")
LABELS: tuple[str, ...] = tuple(f"{t}_{v}" for t in TRENDS for v in VOLATILITIES)


def _t_loglik(x: np.ndarray, scale: np.ndarray, dof: float) -> np.ndarray:
    """Log density (up to a constant) of a unit-variance Student-t scaled to std ``scale``."""
    sc = scale * math.sqrt((dof - 2.0) / dof)
    z = x / sc
    return -np.log(sc) - (dof + 1.0) / 2.0 * np.log1p(z * z / dof)


def _transition(days: Sequence[float]) -> np.ndarray:
    """Transition matrix: stay with prob 1 - 1/days, else move uniformly to another state."""
    k = len(days)
    a = np.empty((k, k))
    for i, d in enumerate(days):
        if d < 1:
            raise ValueError(f"expected durations must be >= 1 bar, got {d!r}")
        a[i] = (1.0 / d) / (k - 1)
        a[i, i] = 1.0 - 1.0 / d
    return a


def _forward(loglik: np.ndarray, trans: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Filtered state probabilities ``P(state_t | r_1..r_t)`` (a plain loop: n x k floats)."""
    n, k = loglik.shape
    lik = np.exp(loglik - loglik.max(axis=1, keepdims=True)).tolist()
    a = trans.tolist()
    p = prior.tolist()
    out = np.empty((n, k))
    rows = range(k)
    for t in range(n):
        li = lik[t]
        q = [sum(p[i] * a[i][j] for i in rows) * li[j] for j in rows]
        total = sum(q)
        p = [v / total for v in q] if total > 0 else [1.0 / k] * k
        out[t] = p
    return out


def regime_scores(
    bars: pd.DataFrame,
    *,
    baseline_window: int = 500,
    vol_levels: tuple[float, float] = (1.1, 2.3),
    vol_days: tuple[float, float] = (90.0, 30.0),
    drift: float = 0.25,
    trend_days: tuple[float, float, float] = (60.0, 45.0, 50.0),
    vol_halflife: float = 10.0,
    dof: float = 5.0,
) -> pd.DataFrame:
    """Filtered regime probabilities (see the module docstring for the model).

    Args:
        bars: Bar frame (``close`` is used; finite and > 0).
        baseline_window: Bars in the rolling median that sets the volatility scale.
        vol_levels: Volatility of calm and turbulent bars, in units of the scale.
        vol_days: Expected calm and turbulent durations (bars).
        drift: Per-bar drift of up / down trends, in units of the scale.
        trend_days: Expected up, down and range durations (bars).
        vol_halflife: Half-life of the EWMA volatility used by the trend chain.
        dof: Degrees of freedom of the Student-t emissions (> 2).

    Returns:
        Frame on the bars' index with ``p_up``, ``p_down``, ``p_range`` and ``p_turbulent``.

    Raises:
        ValueError: For bad parameters or non-positive closes.
    """
    if "close" not in bars.columns:
        raise ValueError("bars need a 'close' column")
    if dof <= 2:
        raise ValueError(f"dof must be > 2, got {dof!r}")
    close = bars["close"].to_numpy(dtype=np.float64)
    n = len(close)
    if n == 0:
        cols = ["p_up", "p_down", "p_range", "p_turbulent"]
        return pd.DataFrame({c: np.empty(0) for c in cols}, index=bars.index)
    if not (close.min() > 0 and np.isfinite(close).all()):
        raise ValueError("closes must be finite and > 0")
    r = np.zeros(n)
    r[1:] = np.diff(np.log(close))
    rs = pd.Series(r)
    scale = (rs.abs().rolling(baseline_window, min_periods=1).median() / 0.6745).to_numpy()
    sigma = rs.ewm(halflife=vol_halflife).std().to_numpy()
    # Before enough history exists, fall back to the running mean absolute return (causal).
    fallback = np.cumsum(np.abs(r)) / np.arange(1, n + 1) * 1.2533 + 1e-12
    scale = np.where(scale > 0, scale, fallback)
    sigma = np.where(np.isfinite(sigma) & (sigma > 0), sigma, scale)

    v_ll = np.stack([_t_loglik(r, scale * m, dof) for m in vol_levels], axis=1)
    v_prior = np.array([vol_days[0], vol_days[1]]) / sum(vol_days)
    pv = _forward(v_ll, _transition(vol_days), v_prior)

    means = (drift, -drift, 0.0)
    t_ll = np.stack([_t_loglik(r - m * scale, sigma, dof) for m in means], axis=1)
    pt = _forward(t_ll, _transition(trend_days), np.full(3, 1.0 / 3.0))
    return pd.DataFrame(
        {"p_up": pt[:, 0], "p_down": pt[:, 1], "p_range": pt[:, 2], "p_turbulent": pv[:, 1]},
        index=bars.index,
    )


def regimes(
    bars: pd.DataFrame,
    *,
    baseline_window: int = 500,
    vol_levels: tuple[float, float] = (1.1, 2.3),
    vol_days: tuple[float, float] = (90.0, 30.0),
    drift: float = 0.25,
    trend_days: tuple[float, float, float] = (60.0, 45.0, 50.0),
    vol_halflife: float = 10.0,
    dof: float = 5.0,
) -> pd.DataFrame:
    """Label every bar with a causal trend × volatility regime.

    The vocabulary matches ``SyntheticSource.regimes``: ``trend`` in {"up", "down", "range"},
    ``volatility`` in {"calm", "turbulent"}, ``label = f"{trend}_{volatility}"``. The label of
    bar t depends on bars up to t only. Parameters are those of :func:`regime_scores`.

    Args:
        bars: Bar frame (``close`` is used).
        baseline_window: Bars in the rolling median that sets the volatility scale.
        vol_levels: Volatility of calm and turbulent bars, in units of the scale.
        vol_days: Expected calm and turbulent durations (bars).
        drift: Per-bar drift of up / down trends, in units of the scale.
        trend_days: Expected up, down and range durations (bars).
        vol_halflife: Half-life of the EWMA volatility used by the trend chain.
        dof: Degrees of freedom of the Student-t emissions (> 2).

    Returns:
        Frame on the bars' index with string columns ``trend``, ``volatility`` and ``label``.
    """
    p = regime_scores(
        bars,
        baseline_window=baseline_window,
        vol_levels=vol_levels,
        vol_days=vol_days,
        drift=drift,
        trend_days=trend_days,
        vol_halflife=vol_halflife,
        dof=dof,
    )
    trend_idx = p[["p_up", "p_down", "p_range"]].to_numpy().argmax(axis=1)
    trend = np.array(TRENDS, dtype=object)[trend_idx]
    vol = np.where(p["p_turbulent"].to_numpy() > 0.5, "turbulent", "calm").astype(object)
    return pd.DataFrame(
        {"trend": trend, "volatility": vol, "label": trend + "_" + vol}, index=bars.index
    )
