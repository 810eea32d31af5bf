"""How well the causal regime labels match market history (``quant-pipelines regimes evaluate``).

* **Trend** against the hindsight Lunde–Timmermann dating (:func:`bull_bear_dating`), ``up`` =
  bull and ``down`` = bear, ``range`` wrong for both. With a lag allowance ``L`` the causal label
  of bar ``t + L`` is compared with the dating of bar ``t``. Balanced accuracy is the mean of the
  bull recall and the bear recall.
* **Lag** of a dated turning point: sessions from the first bar of the new dated state until the
  causal label first shows it (``up`` after a trough, ``down`` after a peak), searched up to the
  next dated turning point; a turn not shown by then is *missed* (infinite lag).
* **Volatility** against :func:`volatility_reference` (top quintile of the trailing 21-bar
  realised volatility): balanced accuracy of turbulent / calm.

Several series are pooled: recalls and agreements count bars over all series, the median lag
runs over all turns and the mean run length is all bars over all runs. Method and figures:
``docs/signals.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from quant_pipelines.signals._reference import bull_bear_dating, volatility_reference
from quant_pipelines.signals._sources import load_series
from quant_pipelines.signals.regimes import regimes

__all__ = [
    "GOALS",
    "RegimeEvaluation",
    "bull_bear_dating",
    "evaluate_regimes",
    "load_series",
    "mean_run_length",
    "turn_lags",
    "volatility_reference",
]

GOALS: dict[str, tuple[str, float]] = {
    "trend_balanced_accuracy": (">=", 0.75),
    "median_lag": ("<=", 20.0),
    "mean_run_length": (">=", 15.0),
    "vol_balanced_accuracy": (">=", 0.80),
}
"""Goal per figure: comparison and target."""


def turn_lags(trend: pd.Series | np.ndarray, dating: pd.Series | np.ndarray) -> np.ndarray:
    """Lag of the causal trend label at each dated turning point (see the module docstring).

    Args:
        trend: Causal trend labels (``up`` / ``down`` / ``range``).
        dating: Reference states (``bull`` / ``bear``) on the same bars.

    Returns:
        One lag (sessions, float) per dated turning point; ``inf`` for a missed turn.
    """
    lab = np.asarray(trend, dtype=object)
    ref = np.asarray(dating, dtype=object)
    turns = np.flatnonzero(ref[1:] != ref[:-1]) + 1
    ends = [*turns[1:], len(ref)]
    out = []
    for start, end in zip(turns, ends, strict=True):
        want = "up" if ref[start] == "bull" else "down"
        hits = np.flatnonzero(lab[start:end] == want)
        out.append(float(hits[0]) if len(hits) else math.inf)
    return np.asarray(out, dtype=np.float64)


def mean_run_length(labels: pd.Series | np.ndarray) -> float:
    """Bars per run of identical consecutive labels (NaN for no bars)."""
    lab = np.asarray(labels, dtype=object)
    if not len(lab):
        return math.nan
    return len(lab) / (1 + int((lab[1:] != lab[:-1]).sum()))


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


@dataclass(frozen=True)
class RegimeEvaluation:
    """Pooled figures of :func:`evaluate_regimes` (recalls and accuracies in [0, 1]).

    Attributes:
        n_series: Series scored.
        n_bars: Bars scored.
        lag: Lag allowance ``L`` of the trend figures (sessions).
        trend_balanced_accuracy: Mean of bull and bear recall at lag ``L``.
        bull_recall: Share of bull bars whose label ``L`` bars later is ``up``.
        bear_recall: Share of bear bars whose label ``L`` bars later is ``down``.
        trend_agreement: Plain share of matching bars at lag ``L``.
        trend_balanced_accuracy_lag0: Balanced accuracy without a lag allowance.
        best_lag: Lag in ``0..L`` with the highest balanced accuracy.
        best_balanced_accuracy: Balanced accuracy at ``best_lag``.
        median_lag: Median lag over the dated turning points (``inf`` if most were missed).
        n_turns: Dated turning points.
        missed_turns: Turning points the label never showed before the next one.
        mean_run_length: Bars per run of identical trend labels.
        range_share: Share of bars labelled ``range``.
        vol_balanced_accuracy: Mean of turbulent and calm recall.
        turbulent_recall: Share of reference-turbulent bars labelled turbulent.
        calm_recall: Share of reference-calm bars labelled calm.
        vol_agreement: Plain share of matching volatility labels (0.8 for "never turbulent").
        truth: Accuracy against known true regimes (synthetic data): ``trend``,
            ``volatility`` and ``joint``; empty for real data.
    """

    n_series: int
    n_bars: int
    lag: int
    trend_balanced_accuracy: float
    bull_recall: float
    bear_recall: float
    trend_agreement: float
    trend_balanced_accuracy_lag0: float
    best_lag: int
    best_balanced_accuracy: float
    median_lag: float
    n_turns: int
    missed_turns: int
    mean_run_length: float
    range_share: float
    vol_balanced_accuracy: float
    turbulent_recall: float
    calm_recall: float
    vol_agreement: float
    truth: Mapping[str, float]

    def goal_results(self) -> list[tuple[str, float, str, bool]]:
        """``(figure, value, goal, met)`` for each entry of :data:`GOALS`."""
        out = []
        for name, (op, target) in GOALS.items():
            value = float(getattr(self, name))
            met = value >= target if op == ">=" else value <= target
            out.append((name, value, f"{op} {target:g}", bool(met)))
        return out

    def meets_goals(self) -> bool:
        """Whether every goal of :data:`GOALS` is met."""
        return all(met for *_, met in self.goal_results())

    def to_text(self) -> str:
        """The figures as aligned text lines (what the CLI prints)."""
        lines = [
            f"series {self.n_series}, bars {self.n_bars}, lag allowance L = {self.lag}",
            f"trend balanced accuracy (L={self.lag}) {self.trend_balanced_accuracy:.3f}",
            f"  bull recall {self.bull_recall:.3f}, bear recall {self.bear_recall:.3f}",
            f"  plain agreement {self.trend_agreement:.3f}, range share {self.range_share:.3f}",
            f"  at L=0 {self.trend_balanced_accuracy_lag0:.3f}; "
            f"best L={self.best_lag}: {self.best_balanced_accuracy:.3f}",
            f"median lag {self.median_lag:g} sessions "
            f"({self.n_turns} turns, {self.missed_turns} missed)",
            f"mean run length {self.mean_run_length:.1f} sessions",
            f"volatility balanced accuracy {self.vol_balanced_accuracy:.3f}",
            f"  turbulent recall {self.turbulent_recall:.3f}, calm recall {self.calm_recall:.3f}",
            f"  plain agreement {self.vol_agreement:.3f}",
        ]
        if self.truth:
            lines.append(
                "against true regimes: "
                + ", ".join(f"{k} accuracy {v:.3f}" for k, v in self.truth.items())
            )
        for name, value, goal, met in self.goal_results():
            lines.append(f"goal {name} {goal}: {value:.3f} {'met' if met else 'NOT MET'}")
        return "\n".join(lines)


def _series_counts(
    bars: pd.DataFrame, lab: pd.DataFrame, lag: int, truth: pd.DataFrame | None
) -> dict[str, Any]:
    """Counts of one series that :func:`evaluate_regimes` pools."""
    trend = lab["trend"].to_numpy(dtype=object)
    ref = bull_bear_dating(bars["close"]).to_numpy(dtype=object)
    n = len(trend)
    c: dict[str, Any] = {"n": n, "runs": 1 + int((trend[1:] != trend[:-1]).sum()) if n else 0}
    c["range"] = int((trend == "range").sum())
    c["bull_hit"] = np.zeros(lag + 1)
    c["bear_hit"] = np.zeros(lag + 1)
    c["bull_n"] = np.zeros(lag + 1)
    c["bear_n"] = np.zeros(lag + 1)
    for el in range(min(lag, max(n - 1, 0)) + 1):
        shifted, r = trend[el:], ref[: n - el]
        c["bull_hit"][el] = (shifted[r == "bull"] == "up").sum()
        c["bear_hit"][el] = (shifted[r == "bear"] == "down").sum()
        c["bull_n"][el] = (r == "bull").sum()
        c["bear_n"][el] = (r == "bear").sum()
    c["lags"] = turn_lags(trend, ref)
    vol = lab["volatility"].to_numpy(dtype=object)
    vref = volatility_reference(bars["close"]).to_numpy(dtype=object)
    c["turb_n"] = int((vref == "turbulent").sum())
    c["calm_n"] = int((vref == "calm").sum())
    c["turb_hit"] = int(((vref == "turbulent") & (vol == "turbulent")).sum())
    c["calm_hit"] = int(((vref == "calm") & (vol == "calm")).sum())
    if truth is not None:
        tt = truth["trend"].reindex(lab.index).to_numpy(dtype=object)
        tv = truth["volatility"].reindex(lab.index).to_numpy(dtype=object)
        c["truth"] = {
            "trend": int((trend == tt).sum()),
            "volatility": int((vol == tv).sum()),
            "joint": int(((trend == tt) & (vol == tv)).sum()),
        }
    return c


def evaluate_regimes(
    series: Mapping[str, pd.DataFrame],
    *,
    lag: int = 20,
    truths: Mapping[str, pd.DataFrame] | None = None,
    labeler: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    **regime_kwargs: Any,
) -> RegimeEvaluation:
    """Score :func:`~quant_pipelines.signals.regimes` on one or more bar series (pooled).

    Args:
        series: Symbol -> bar frame (time-ordered, ``close`` finite and > 0).
        lag: Lag allowance ``L`` of the trend figures (sessions, >= 0).
        truths: Symbol -> true regimes (``trend`` / ``volatility`` columns, e.g.
            ``SyntheticSource.regimes``) to also report plain accuracy against.
        labeler: Bars -> frame with ``trend`` and ``volatility`` columns, to score instead of
            :func:`~quant_pipelines.signals.regimes` (e.g. a baseline).
        **regime_kwargs: Passed on to :func:`~quant_pipelines.signals.regimes`.

    Returns:
        The pooled figures.

    Raises:
        ValueError: For no series, no bars or a negative lag.
    """
    if not series:
        raise ValueError("no series given")
    if isinstance(lag, bool) or int(lag) != lag or lag < 0:
        raise ValueError(f"lag must be an integer >= 0, got {lag!r}")
    lag = int(lag)
    if labeler is None:

        def labeler(bars: pd.DataFrame) -> pd.DataFrame:
            return regimes(bars, **regime_kwargs)

    counts = []
    for symbol, bars in series.items():
        truth = truths.get(symbol) if truths is not None else None
        counts.append(_series_counts(bars, labeler(bars), lag, truth))
    total = sum(c["n"] for c in counts)
    if not total:
        raise ValueError("no bars to score")
    bull_hit, bear_hit, bull_n, bear_n = (
        sum(c[key] for c in counts) for key in ("bull_hit", "bear_hit", "bull_n", "bear_n")
    )
    bull_rec = np.divide(bull_hit, bull_n, out=np.full(lag + 1, np.nan), where=bull_n > 0)
    bear_rec = np.divide(bear_hit, bear_n, out=np.full(lag + 1, np.nan), where=bear_n > 0)
    bal = (bull_rec + bear_rec) / 2.0
    best = int(np.nanargmax(bal)) if np.isfinite(bal).any() else 0
    lags = np.concatenate([c["lags"] for c in counts])
    turb = (sum(c["turb_hit"] for c in counts), sum(c["turb_n"] for c in counts))
    calm = (sum(c["calm_hit"] for c in counts), sum(c["calm_n"] for c in counts))
    truth = {}
    if truths is not None:
        truth = {k: sum(c["truth"][k] for c in counts) / total for k in counts[0]["truth"]}
    return RegimeEvaluation(
        n_series=len(counts),
        n_bars=total,
        lag=lag,
        trend_balanced_accuracy=float(bal[lag]),
        bull_recall=float(bull_rec[lag]),
        bear_recall=float(bear_rec[lag]),
        trend_agreement=_ratio(bull_hit[lag] + bear_hit[lag], bull_n[lag] + bear_n[lag]),
        trend_balanced_accuracy_lag0=float(bal[0]),
        best_lag=best,
        best_balanced_accuracy=float(bal[best]),
        median_lag=float(np.median(lags)) if len(lags) else math.nan,
        n_turns=len(lags),
        missed_turns=int(np.isinf(lags).sum()),
        mean_run_length=total / sum(c["runs"] for c in counts),
        range_share=sum(c["range"] for c in counts) / total,
        vol_balanced_accuracy=(_ratio(*turb) + _ratio(*calm)) / 2.0,
        turbulent_recall=_ratio(*turb),
        calm_recall=_ratio(*calm),
        vol_agreement=_ratio(turb[0] + calm[0], turb[1] + calm[1]),
        truth=truth,
    )
