"""Fitting one symbol's detectors on the history before a point in time. Private module.

:func:`fit_models` is re-exported by :mod:`quant_pipelines.quality.scoring`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from quant_pipelines.marketdata.calendars import CalendarLike
from quant_pipelines.marketdata.schema import normalize_bars
from quant_pipelines.quality._jumps import jump_bound_for
from quant_pipelines.quality._prepare import HISTORY_USABLE, prepare
from quant_pipelines.quality._prophet_fit import fit_prophet
from quant_pipelines.quality._runs import stale_runs
from quant_pipelines.quality.features import features_from_prepared, trailing_stats
from quant_pipelines.quality.iforest import IForestModel, fit_iforest, training_rows
from quant_pipelines.quality.prophet_models import TRAIN_WINDOW, ProphetModels
from quant_pipelines.quality.rules import RULES, rule_flags

TRAIN_CONTEXT = HISTORY_USABLE + 40
"""Rows kept in front of the training window so its features are those of the full history."""


@dataclass
class SymbolModels:
    """The fitted detectors of one symbol.

    Attributes:
        iforest: Isolation Forest (per symbol, or pooled over the asset class).
        prophet: Prophet models, or None to score with the Isolation Forest alone.
    """

    iforest: IForestModel
    prophet: ProphetModels | None


def _exclude_mask(index: pd.DatetimeIndex, exclude: pd.DatetimeIndex | None) -> np.ndarray:
    if exclude is None or len(exclude) == 0:
        return np.zeros(len(index), dtype=bool)
    return index.isin(pd.DatetimeIndex(exclude))


def history_before(history: pd.DataFrame, before: pd.Timestamp | None, rows: int) -> pd.DataFrame:
    """The last ``rows`` distinct timestamps of ``history`` strictly before ``before``."""
    hist = normalize_bars(history)
    if before is not None:
        hist = hist[hist.index < pd.Timestamp(before)]
    keys = np.unique(hist.index.asi8)
    if len(keys) > rows:
        hist = hist[hist.index.asi8 >= keys[-rows]]
    return hist


def fit_models(
    history: pd.DataFrame,
    *,
    seed: int = 0,
    exclude: pd.DatetimeIndex | None = None,
    calendar: CalendarLike | None = None,
    freq: str = "1D",
    window: int = TRAIN_WINDOW,
    with_prophet: bool = True,
    before: pd.Timestamp | None = None,
    stale_run: int = 5,
    symbol: str | None = None,
) -> SymbolModels:
    """Fit one symbol's detectors on the trailing ``window`` bars of its history.

    Bars that break a rule (every repeat of a stale run included) and bars in ``exclude``
    (analyst-marked false positives, confirmed anomalies) are left out of the training window.
    Only the last ``window`` + :data:`TRAIN_CONTEXT` timestamps before ``before`` are read, so
    the fit does not depend on how much older history is passed.

    Args:
        history: Bars of the symbol.
        seed: Seed of the forest and of Stan's optimiser.
        exclude: Timestamps to leave out of training.
        calendar: Calendar of the symbol (gap-aware, session-scaled features).
        freq: Bar frequency.
        window: Training window in bars (the features' trailing window comes on top).
        with_prophet: Fit Prophet too (False: Isolation Forest only).
        before: Fit on the bars strictly before this instant (all of ``history`` when None):
            the start of the period the models will score.
        stale_run: Run of identical closes whose repeats are left out.
        symbol: Named in error messages.

    Returns:
        The fitted models.

    Raises:
        ValueError: If the history is too short for a detector, or a bar lies outside the
            calendar's sessions.
    """
    hist = history_before(history, before, window + TRAIN_CONTEXT)
    prep = prepare(hist, calendar=calendar, freq=freq, stale_run=stale_run, symbol=symbol)
    stats = trailing_stats(prep)
    feats = features_from_prepared(prep, stats=stats)
    flags = rule_flags(prep, sigma=stats["sigma"], jump_bound=jump_bound_for(calendar))
    close = np.where(prep.frame_bad, np.nan, prep.frame_close)
    stale = stale_runs(close, min_run=stale_run)[prep.row_to_frame]
    broken = flags[list(RULES)].to_numpy(dtype=bool).any(axis=1) | stale
    drop = broken | _exclude_mask(feats.index, exclude)
    train = training_rows(feats, exclude=drop).iloc[-window:]
    iforest = fit_iforest(train, seed=seed)
    prophet = None
    if with_prophet:
        left_out = feats.index[broken]
        if exclude is not None and len(exclude):
            left_out = left_out.union(pd.DatetimeIndex(exclude))
        prophet = fit_prophet(
            hist,
            seed=seed,
            window=window,
            exclude=left_out,
            calendar=calendar,
            freq=freq,
            stale_run=stale_run,
        )
    return SymbolModels(iforest, prophet)
