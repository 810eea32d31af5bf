"""Threshold calibration: thresholds from history that meet target alert rates per severity.

Design (see ``docs/quality.md``):

1. *Out-of-sample scores.* Thresholds are quantiles of scores the detectors gave to bars they
   were not trained on, as in production. :func:`walk_forward_scores` replays history the way
   the jobs run it: the models of each refit period (every ``refit_every`` bars, or each week)
   are fitted on the trailing window before the period and score its bars by prediction
   only, whatever the number of bars per scoring call. (Once the pipeline has run for a
   while, the scores stored beside the bars are exactly such scores and can be passed to
   :func:`calibrate_thresholds` directly.)
2. *Clean sample.* Bars that broke a rule, bars in the features' warm-up and known anomalies
   (``anomalies``: alerts analysts confirmed) are left out. Bars analysts marked *false
   positive* stay in the sample: they are clean bars, and the target is the alert rate on clean
   bars. They are left out of the models' *training window* instead (``exclude``, passed on to
   :func:`~quant_pipelines.quality.fit_models`), so that the models do not learn them as normal.
3. *Warning.* The two detectors get equal shares of the warning budget, Prophet's split over
   its price and volume model: thresholds at the ``1 - p``, ``1 - p/2`` and ``1 - p/2``
   quantiles, with the largest ``p`` for which the share of clean bars with any score at or
   above its threshold is at most ``warning_rate``.
4. *Critical.* Each score's critical threshold is its own ``1 - critical_rate`` quantile, and at
   least a fixed margin above its warning threshold ("far beyond"). A statistical critical
   needs the forest *and* a Prophet model, so its rate on the clean sample is at most
   ``critical_rate``.
5. *Version.* ``f"{as_of:%Y%m%d}-{hash of the values}"``: the same history gives the same
   version; the weekly job stores each version and scores record the one they used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from quant_pipelines.marketdata.calendars import CalendarLike
from quant_pipelines.quality._replay import walk_forward_scores
from quant_pipelines.quality.prophet_models import TRAIN_WINDOW
from quant_pipelines.quality.severity import Thresholds

__all__ = [
    "CalibrationTargets",
    "calibrate",
    "calibrate_thresholds",
    "clean_mask",
    "walk_forward_scores",
]

DETECTORS: tuple[str, ...] = ("iforest", "prophet_price", "prophet_volume")
"""Score columns that get thresholds, in :class:`Thresholds` order."""

FLOORS: dict[str, float] = {"iforest": 0.50, "prophet_price": 0.50, "prophet_volume": 0.10}
"""Lowest warning thresholds: 0.5 is the forest paper's "no distinct anomaly"; a Prophet
distance of 0 would flag every bar."""

SHARES: dict[str, float] = {"iforest": 1.0, "prophet_price": 0.5, "prophet_volume": 0.5}
"""Relative share of the warning budget per score: the two detectors get equal shares."""

MARGINS: dict[str, float] = {"iforest": 0.05, "prophet_price": 0.50, "prophet_volume": 0.50}
"""How far above its warning threshold a detector's critical threshold is, at least."""

MIN_BARS = 100
"""Fewest clean bars a calibration accepts."""


@dataclass(frozen=True)
class CalibrationTargets:
    """Target alert rates on clean history.

    Attributes:
        warning_rate: Share of clean bars at warning or above.
        critical_rate: Share of clean bars at critical (e.g. at most 0.5%).
    """

    warning_rate: float = 0.02
    critical_rate: float = 0.002

    def __post_init__(self) -> None:
        if not 0 < self.critical_rate <= self.warning_rate < 1:
            raise ValueError("need 0 < critical_rate <= warning_rate < 1")


def clean_mask(scores: pd.DataFrame, *, anomalies: pd.DatetimeIndex | None = None) -> np.ndarray:
    """Bars of a score frame that count as clean history for calibration."""
    clean = scores["rules"].map(len).to_numpy() == 0
    clean &= ~scores["warmup"].to_numpy(dtype=bool)
    if anomalies is not None and len(anomalies):
        clean &= ~scores.index.isin(pd.DatetimeIndex(anomalies))
    return clean


def _warning_levels(scores: np.ndarray, rate: float) -> np.ndarray:
    """Warning thresholds whose union alert rate is <= rate, with equal shares per detector.

    The tail share ``p`` goes to the forest and ``p / 2`` to each Prophet model (the two
    detectors share the budget equally; Prophet's half is split over its two models); ``p`` is
    the largest share whose union alert rate stays within ``rate``.
    """
    floors = np.array([FLOORS[d] for d in DETECTORS])
    shares = np.array([SHARES[d] for d in DETECTORS])

    def levels(p: float) -> np.ndarray:
        qs = 1.0 - p * shares
        return np.maximum([np.quantile(scores[:, i], q) for i, q in enumerate(qs)], floors)

    def alert_rate(p: float) -> float:
        return float(np.mean((scores >= levels(p)).any(axis=1)))

    lo, hi = 0.0, rate  # alert_rate(p) rises with p; alert_rate(0) flags the maxima only
    if alert_rate(hi) <= rate:
        return levels(hi)
    for _ in range(50):
        mid = (lo + hi) / 2
        if alert_rate(mid) <= rate:
            lo = mid
        else:
            hi = mid
    return levels(lo)


def _round_up(x: float) -> float:
    """Six decimals, rounded up so that rounding never admits more alerts."""
    return float(np.ceil(float(x) * 1e6 - 1e-9) / 1e6)


def calibrate_thresholds(
    scores: pd.DataFrame,
    *,
    targets: CalibrationTargets | None = None,
    anomalies: pd.DatetimeIndex | None = None,
    as_of: pd.Timestamp | None = None,
    min_bars: int = MIN_BARS,
) -> Thresholds:
    """Thresholds whose alert rates on clean, out-of-sample history meet the targets.

    Args:
        scores: Out-of-sample scores (columns ``iforest``, ``prophet_price``,
            ``prophet_volume``, ``rules``, ``warmup``),
            e.g. from :func:`walk_forward_scores` or read back from the stored bars; one
            symbol's or several symbols' concatenated.
        targets: Target alert rates (defaults: 2% warning, 0.2% critical).
        anomalies: Timestamps of known anomalies (alerts analysts confirmed), left out of the
            clean sample. With several symbols pooled, drop each symbol's own anomalies from
            its rows before concatenating instead (timestamps are shared across symbols).
        as_of: Date in the version string (default: the last scored timestamp).
        min_bars: Fewest clean bars accepted.

    Returns:
        The versioned thresholds.

    Raises:
        ValueError: If fewer than ``min_bars`` clean bars remain.
    """
    targets = targets or CalibrationTargets()
    clean = clean_mask(scores, anomalies=anomalies)
    sample = scores.loc[clean, list(DETECTORS)].to_numpy(dtype="float64")
    if len(sample) < min_bars:
        raise ValueError(
            f"calibration needs at least {min_bars} clean scored bars, got {len(sample)}; "
            "score a longer history first"
        )
    warning = _warning_levels(sample, targets.warning_rate)
    top = np.quantile(sample, 1.0 - targets.critical_rate, axis=0)
    critical = np.maximum(top, warning + np.array([MARGINS[d] for d in DETECTORS]))
    stamp = pd.Timestamp(as_of) if as_of is not None else scores.index.max()
    values: dict[str, float] = {}
    for name, warn, crit in zip(DETECTORS, warning, critical, strict=True):
        values[f"{name}_warning"] = _round_up(warn)
        values[f"{name}_critical"] = _round_up(crit)
    thresholds = Thresholds(
        **values,
        n_bars=len(sample),
        warning_rate=targets.warning_rate,
        critical_rate=targets.critical_rate,
    )
    return thresholds.with_version(f"{stamp:%Y%m%d}")


def calibrate(
    history: pd.DataFrame,
    *,
    targets: CalibrationTargets | None = None,
    exclude: pd.DatetimeIndex | None = None,
    anomalies: pd.DatetimeIndex | None = None,
    seed: int = 0,
    calendar: CalendarLike | None = None,
    freq: str = "1D",
    train_window: int = TRAIN_WINDOW,
    refit_every: int | str = 5,
    batch: int = 5,
    with_prophet: bool = True,
) -> Thresholds:
    """Calibrate thresholds on one symbol's history by walk-forward scoring.

    The first ``train_window`` bars only train; the rest are scored out of sample.

    Args:
        history: Bars of the symbol (at least ``train_window + MIN_BARS`` or so).
        targets: Target alert rates.
        exclude: Bars left out of the models' training windows: those analysts marked false
            positive (the models should not learn them as normal).
        anomalies: Known anomalies (alerts analysts confirmed): left out of the clean sample.
        seed: Seed of every fit.
        calendar: Calendar of the symbol.
        freq: Bar frequency.
        train_window: Training window of each refit.
        refit_every: Bars between refits, or a period alias such as ``"W"``.
        batch: Bars per scoring call (speed only: scores do not depend on it).
        with_prophet: Fit and score Prophet too.

    Returns:
        The versioned thresholds.
    """
    n = len(np.unique(history.index.asi8))
    start = min(train_window, max(n // 2, 1))
    scores = walk_forward_scores(
        history,
        start=start,
        refit_every=refit_every,
        batch=batch,
        train_window=train_window,
        seed=seed,
        calendar=calendar,
        freq=freq,
        exclude=exclude,
        with_prophet=with_prophet,
    )
    return calibrate_thresholds(scores, targets=targets, anomalies=anomalies)
