"""Walk-forward replay of a history as production runs it. Private module; exported by
:mod:`quant_pipelines.quality.calibration` as :func:`walk_forward_scores`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from quant_pipelines.marketdata.calendars import CalendarLike
from quant_pipelines.quality._models import fit_models
from quant_pipelines.quality._prepare import OffCalendarError
from quant_pipelines.quality._schedule import ModelSchedule, period_starts
from quant_pipelines.quality.prophet_models import TRAIN_WINDOW
from quant_pipelines.quality.scoring import score_bars
from quant_pipelines.quality.severity import Thresholds


def _ns(index: pd.DatetimeIndex | list) -> np.ndarray:
    """UTC nanoseconds of timestamps (inputs may carry any unit)."""
    idx = pd.DatetimeIndex(index)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    return idx.tz_convert("UTC").as_unit("ns").asi8


def _starts(stamps: np.ndarray, start: int, refit_every: int | str) -> pd.DatetimeIndex:
    if isinstance(refit_every, str):
        scored = pd.DatetimeIndex(stamps[start:], tz="UTC")
        return period_starts(scored, refit_every).unique().sort_values()
    if int(refit_every) < 1:
        raise ValueError(f"refit_every must be >= 1 bar or a period alias, got {refit_every!r}")
    return pd.DatetimeIndex(stamps[start :: int(refit_every)], tz="UTC")


def walk_forward_scores(
    bars: pd.DataFrame,
    *,
    start: int,
    refit_every: int | str = 5,
    batch: int = 1,
    train_window: int = TRAIN_WINDOW,
    thresholds: Thresholds | None = None,
    seed: int = 0,
    calendar: CalendarLike | None = None,
    freq: str = "1D",
    exclude: pd.DatetimeIndex | None = None,
    confirmed: pd.DatetimeIndex | None = None,
    with_prophet: bool = True,
    symbol: str | None = None,
) -> pd.DataFrame:
    """Replay history as production runs it: periodic refits, then prediction-only scoring.

    The models of each refit period are fitted on the bars strictly before the period's
    start and score every bar of the period by prediction only. A bar's score therefore
    depends on the bars up to it and its period's models alone: ``batch`` changes the number
    of scoring calls (speed), never the scores.

    Args:
        bars: One symbol's bars (sorted or not; duplicates allowed).
        start: Position (among the sorted distinct timestamps) of the first bar to score;
            the bars before it are the first training history.
        refit_every: Refit period: a number of bars (periods start at the ``start``-th
            timestamp and every ``refit_every`` timestamps after it; 5 ≈ weekly for daily
            equity bars), or a pandas period alias such as ``"W"`` (weeks from Monday
            00:00 UTC, as the weekly job refits).
        batch: Bars per scoring call (1 = daily scoring of daily bars).
        train_window: Training window of each refit.
        thresholds: Thresholds for the severities (defaults when None).
        seed: Seed of every fit and of Prophet's sampling.
        calendar: Calendar of the symbol.
        freq: Bar frequency.
        exclude: Timestamps left out of every training window (analyst false positives).
        confirmed: Timestamps of true anomalies, to simulate the analysts' review: those
            before ``start`` count as reviewed history, and each later one is left out of the
            training windows once it has been alerted (warning or above), as an analyst
            would have confirmed it by the next refit.
        with_prophet: Fit and score Prophet too.
        symbol: Named in error messages.

    Returns:
        Scores of the rows at or after the ``start``-th timestamp, in time order (rows of one
        timestamp in their original order); see :func:`~quant_pipelines.quality.score_bars`.
        Periods whose history is too short for the models are scored by the rules only
        (``warmup`` set, ``warmup_reason`` says why).
    """
    keys = _ns(bars.index)
    stamps = np.unique(keys)
    if not 0 < start < len(stamps):
        raise ValueError(f"start must be within 1..{len(stamps) - 1}, got {start}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    truth = np.unique(_ns([] if confirmed is None else confirmed))
    known = set(np.unique(_ns([] if exclude is None else exclude)))
    known |= set(truth[truth < stamps[start]])
    starts = _starts(stamps, start, refit_every)
    bounds = np.append(starts.asi8, np.iinfo(np.int64).max)
    common = {"seed": seed, "calendar": calendar, "freq": freq, "symbol": symbol}
    parts = []
    for i, begin in enumerate(starts):
        period = stamps[(stamps >= max(bounds[i], stamps[start])) & (stamps < bounds[i + 1])]
        if len(period) == 0:
            continue
        try:
            models = fit_models(
                bars,
                exclude=pd.DatetimeIndex(sorted(known), tz="UTC"),
                window=train_window,
                with_prophet=with_prophet,
                before=begin,
                **common,
            )
            schedule = ModelSchedule.single(begin, models)
        except OffCalendarError:
            raise
        except ValueError as exc:
            schedule = ModelSchedule.single(begin, None, f"no models for the period: {exc}")
        for lo in range(0, len(period), batch):
            chunk = period[lo : lo + batch]
            block = bars[(keys >= chunk[0]) & (keys <= chunk[-1])]
            scored = score_bars(
                block,
                history=bars[keys < chunk[0]],
                thresholds=thresholds,
                models=schedule,
                **common,
            )
            alerted = _ns(scored.index[scored["severity"].to_numpy() != "info"])
            known |= set(alerted[np.isin(alerted, truth)])
            parts.append(scored)
    return pd.concat(parts)
