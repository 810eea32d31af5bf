"""Causal regime labels: trend (up / down / range) × volatility (calm / turbulent).

Method and measured accuracy in ``docs/signals.md``; every label at bar t uses bars up to t only.

* **Trend** (default ``trend_method="drawdown"``): the causal half of the Lunde–Timmermann
  bull/bear dating. A down-trend is confirmed when the close has fallen ``down_sigmas`` robust
  daily sigmas below the running peak *and* sits below its ``trend_filter``-bar moving average;
  an up-trend symmetrically (``up_sigmas`` above the running trough, above the average). The state
  holds until the opposite rule fires; ``range`` means that nothing has been confirmed yet.
  ``trend_method="hmm"`` keeps the earlier label: the most probable state of a forward-filtered
  up / down / range hidden Markov chain (:func:`regime_scores`).
* **Volatility**: a forward-filtered calm / turbulent hidden Markov chain on Student-t returns
  scaled by a rolling median of ``|r|`` (``baseline_window`` bars); turbulent when
  ``p_turbulent > 0.5``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from quant_pipelines.signals._hmm import forward, t_loglik, transition
from quant_pipelines.signals._trend import drawdown_trend

TRENDS: tuple[str, ...] = ("up", "down", "range")
VOLATILITIES: tuple[str, ...] = ("calm", "turbulent")
LABELS: tuple[str, ...] = tuple(f"{t}_{v}" for t in TRENDS for v in VOLATILITIES)

TrendMethod = Literal["drawdown", "hmm"]


def _closes(bars: pd.DataFrame) -> np.ndarray:
    if "close" not in bars.columns:
        raise ValueError("bars need a 'close' column")
    close = bars["close"].to_numpy(dtype=np.float64)
    if len(close) and not (close.min() > 0 and np.isfinite(close).all()):
        raise ValueError("closes must be finite and > 0")
    return close


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
    """Filtered probabilities of the two hidden Markov chains (causal).

    With ``s_t`` the rolling median of ``|r|`` over ``baseline_window`` bars / 0.6745 (``r``:
    log close-to-close returns): the volatility chain has Student-t returns with standard
    deviation ``s_t * vol_levels[state]``; the trend chain has Student-t returns with mean
    ``+drift * s_t``, ``-drift * s_t`` or 0 and the standard deviation of an EWMA (half-life
    ``vol_halflife``). ``p_turbulent`` sets the volatility label of :func:`regimes`; ``p_up``,
    ``p_down`` and ``p_range`` set its trend label only with ``trend_method="hmm"``.

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
    close = _closes(bars)
    if dof <= 2:
        raise ValueError(f"dof must be > 2, got {dof!r}")
    n = len(close)
    if n == 0:
        cols = ["p_up", "p_down", "p_range", "p_turbulent"]
        return pd.DataFrame({c: np.empty(0) for c in cols}, index=bars.index)
    r = np.zeros(n)
    r[1:] = np.diff(np.log(close))
    rs = pd.Series(r)
    scale = (rs.abs().rolling(baseline_window, min_periods=1).median() / 0.6745).to_numpy()
    sigma = rs.ewm(halflife=vol_halflife).std().to_numpy()
    # Before enough history exists, fall back to the running mean absolute return (causal).
    fallback = np.cumsum(np.abs(r)) / np.arange(1, n + 1) * 1.2533 + 1e-12
    scale = np.where(scale > 0, scale, fallback)
    sigma = np.where(np.isfinite(sigma) & (sigma > 0), sigma, scale)

    v_ll = np.stack([t_loglik(r, scale * m, dof) for m in vol_levels], axis=1)
    v_prior = np.array([vol_days[0], vol_days[1]]) / sum(vol_days)
    pv = forward(v_ll, transition(vol_days), v_prior)

    means = (drift, -drift, 0.0)
    t_ll = np.stack([t_loglik(r - m * scale, sigma, dof) for m in means], axis=1)
    pt = forward(t_ll, transition(trend_days), np.full(3, 1.0 / 3.0))
    return pd.DataFrame(
        {"p_up": pt[:, 0], "p_down": pt[:, 1], "p_range": pt[:, 2], "p_turbulent": pv[:, 1]},
        index=bars.index,
    )


def regimes(
    bars: pd.DataFrame,
    *,
    trend_method: TrendMethod = "drawdown",
    down_sigmas: float = 5.0,
    up_sigmas: float = 4.0,
    trend_filter: int = 50,
    scale_window: int = 250,
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
    bar t depends on bars up to t only, and the same bars always give the same labels.

    Args:
        bars: Bar frame (``close`` is used; finite and > 0).
        trend_method: ``"drawdown"`` (confirmed drawdowns / draw-ups, the default) or ``"hmm"``
            (the most probable state of the trend chain of :func:`regime_scores`).
        down_sigmas: Drawdown from the running peak that confirms a down-trend, in robust daily
            sigmas (drawdown method).
        up_sigmas: Rise from the running trough that confirms an up-trend (drawdown method).
        trend_filter: Bars in the moving average that the close must be below (down) or above
            (up) for a confirmation; 0 for no filter (drawdown method).
        scale_window: Returns in the rolling median of ``|r|`` behind the robust daily sigma
            (drawdown method).
        baseline_window: Bars in the rolling median that sets the volatility chain's scale.
        vol_levels: Volatility of calm and turbulent bars, in units of the scale.
        vol_days: Expected calm and turbulent durations (bars).
        drift: Per-bar drift of up / down trends, in units of the scale (hmm method).
        trend_days: Expected up, down and range durations (bars) (hmm method).
        vol_halflife: Half-life of the EWMA volatility used by the trend chain (hmm method).
        dof: Degrees of freedom of the Student-t emissions (> 2).

    Returns:
        Frame on the bars' index with string columns ``trend``, ``volatility`` and ``label``.

    Raises:
        ValueError: For bad parameters or non-positive closes.
    """
    if trend_method not in ("drawdown", "hmm"):
        raise ValueError(f"trend_method must be 'drawdown' or 'hmm', got {trend_method!r}")
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
    if trend_method == "hmm":
        codes = p[["p_up", "p_down", "p_range"]].to_numpy().argmax(axis=1)
    else:
        codes = drawdown_trend(
            _closes(bars),
            down_sigmas=down_sigmas,
            up_sigmas=up_sigmas,
            filter_window=trend_filter,
            scale_window=scale_window,
        )
    trend = np.array(TRENDS, dtype=object)[codes]
    vol = np.where(p["p_turbulent"].to_numpy() > 0.5, "turbulent", "calm").astype(object)
    return pd.DataFrame(
        {"trend": trend, "volatility": vol, "label": trend + "_" + vol}, index=bars.index
    )
