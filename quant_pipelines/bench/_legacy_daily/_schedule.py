"""Refit schedules: the models of each period, fitted on the history strictly before it.

Private module; :class:`ModelSchedule` and :func:`fit_schedule` are exported by
:mod:`quant_pipelines.quality`.

Production refits weekly and scores daily by prediction only. Keying the models by period
(the ISO week of the bar, by default) rather than by scoring call makes every bar's score a
function of the bars up to it and of its period's models alone: scoring a history in one
batch, in batches of any size or bar by bar gives the same scores, and changing bars after
``t`` changes nothing at or before ``t``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from quant_pipelines.bench._legacy_daily._models import SymbolModels, fit_models
from quant_pipelines.bench._legacy_daily._prepare import OffCalendarError
from quant_pipelines.bench._legacy_daily.prophet_models import TRAIN_WINDOW
from quant_pipelines.marketdata.calendars import CalendarLike
from quant_pipelines.marketdata.schema import normalize_bars

REFIT = "W"
"""Default refit period: weekly (pandas period alias; weeks start on Monday 00:00 UTC)."""


def period_starts(index: pd.DatetimeIndex, every: str = REFIT) -> pd.DatetimeIndex:
    """Start (UTC) of the refit period of each timestamp.

    Args:
        index: UTC timestamps.
        every: Pandas period alias: ``"W"`` (weeks starting Monday 00:00 UTC), ``"D"``,
            ``"M"``, ...

    Returns:
        UTC period starts aligned to ``index``.
    """
    naive = pd.DatetimeIndex(index).tz_convert("UTC").tz_localize(None)
    starts = naive.to_period(every).start_time
    return pd.DatetimeIndex(starts).as_unit("ns").tz_localize("UTC")


@dataclass(frozen=True)
class ModelSchedule:
    """Models per refit period: a bar is scored by the models of the last period start at or
    before it.

    Attributes:
        starts: Sorted, distinct UTC period starts.
        models: The models of each period, fitted on the bars strictly before its start; None
            where that history was too short.
        reasons: Why a period has no models ("" where it has).
    """

    starts: pd.DatetimeIndex
    models: tuple[SymbolModels | None, ...]
    reasons: tuple[str, ...]

    def __post_init__(self) -> None:
        if not len(self.starts) == len(self.models) == len(self.reasons):
            raise ValueError("starts, models and reasons must have the same length")
        if not self.starts.is_monotonic_increasing or not self.starts.is_unique:
            raise ValueError("period starts must be sorted and distinct")

    @classmethod
    def single(
        cls, start: pd.Timestamp, models: SymbolModels | None, reason: str = ""
    ) -> ModelSchedule:
        """A schedule of one period starting at ``start``."""
        return cls(pd.DatetimeIndex([pd.Timestamp(start)]).as_unit("ns"), (models,), (reason,))

    def positions(self, index: pd.DatetimeIndex) -> np.ndarray:
        """Period of each timestamp (position in :attr:`starts`; -1 before the first)."""
        stamps = pd.DatetimeIndex(index).as_unit("ns").asi8
        return np.searchsorted(self.starts.as_unit("ns").asi8, stamps, side="right") - 1


def fit_schedule(
    bars: pd.DataFrame,
    *,
    every: str = REFIT,
    starts: Sequence[pd.Timestamp] | pd.DatetimeIndex | None = None,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    seed: int = 0,
    exclude: pd.DatetimeIndex | None = None,
    calendar: CalendarLike | None = None,
    freq: str = "1D",
    window: int = TRAIN_WINDOW,
    with_prophet: bool = True,
    stale_run: int = 5,
    symbol: str | None = None,
) -> ModelSchedule:
    """Fit the models of every period that holds bars to score, each on the bars before it.

    Args:
        bars: One symbol's bars: the history and the bars to score.
        every: Refit period (pandas period alias) when ``starts`` is None.
        starts: Explicit period starts (e.g. every fifth bar of a replay).
        start: First bar to score (default: the first bar); periods are those of the bars
            in ``[start, end]``.
        end: Last bar to score (default: the last bar).
        seed: Seed of every fit.
        exclude: Timestamps left out of every training window.
        calendar: Calendar of the symbol.
        freq: Bar frequency.
        window: Training window of each fit.
        with_prophet: Fit Prophet too.
        stale_run: Run of identical closes that makes a stale run.
        symbol: Named in error messages.

    Returns:
        The schedule; a period whose history is too short has no models and says why.
    """
    frame = normalize_bars(bars)
    if starts is None:
        index = frame.index
        if start is not None:
            index = index[index >= pd.Timestamp(start)]
        if end is not None:
            index = index[index <= pd.Timestamp(end)]
        starts = period_starts(index, every).unique().sort_values()
    starts = pd.DatetimeIndex(starts).as_unit("ns").unique().sort_values()
    models: list[SymbolModels | None] = []
    reasons: list[str] = []
    for begin in starts:
        try:
            fitted = fit_models(
                frame,
                seed=seed,
                exclude=exclude,
                calendar=calendar,
                freq=freq,
                window=window,
                with_prophet=with_prophet,
                before=begin,
                stale_run=stale_run,
                symbol=symbol,
            )
        except OffCalendarError:
            raise
        except ValueError as exc:
            models.append(None)
            reasons.append(f"no models for the period from {begin}: {exc}")
        else:
            models.append(fitted)
            reasons.append("")
    return ModelSchedule(starts, tuple(models), tuple(reasons))
