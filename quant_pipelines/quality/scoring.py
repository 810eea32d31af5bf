"""Scoring one symbol's bars: rules, features, Isolation Forest, Prophet and severity.

``score_bars`` is the contract the Dagster asset calls. In production the weekly job fits
:class:`SymbolModels` (and stores the Prophet part as JSON) and calibrates the thresholds; the
daily job passes both in, so scoring only looks up Prophet's stored band (and predicts the
bars outside it). Every bar is scored from the bars up to it and the models of its period
(:class:`ModelSchedule`), so the result does not depend on how the bars are split into
batches. The work is done by :mod:`quant_pipelines.quality.batch` (one symbol here; the daily
job scores a whole asset class at once with ``score_symbols``).
"""

from __future__ import annotations

import pandas as pd

from quant_pipelines.marketdata.calendars import CalendarLike
from quant_pipelines.marketdata.schema import normalize_bars
from quant_pipelines.quality._models import SymbolModels, fit_models
from quant_pipelines.quality._schedule import REFIT, ModelSchedule, fit_schedule, period_starts
from quant_pipelines.quality._verdict import FEATURE_COLUMNS
from quant_pipelines.quality.batch import SymbolBatch, prepare_parts, score_parts
from quant_pipelines.quality.severity import Thresholds

__all__ = ["SCORE_COLUMNS", "ModelSchedule", "SymbolModels", "fit_models", "score_bars"]

DETECTOR_COLUMNS: tuple[str, ...] = ("iforest", "prophet", "prophet_price", "prophet_volume")
"""The detectors' scores."""

VERDICT_COLUMNS: tuple[str, ...] = (
    "severity",
    "rules",
    "flags",
    "kind",
    "market_event",
    "warmup",
    "gap_before",
)
"""What the scorer concluded about each bar."""

DIAGNOSTIC_COLUMNS: tuple[str, ...] = (
    "statistical_level",
    "log_return",
    "session_fraction",
    "warmup_reason",
)
"""Why a bar got its level: the detectors' level before rules, inputs, and warm-up reason."""

SCORE_COLUMNS: tuple[str, ...] = (
    DETECTOR_COLUMNS + VERDICT_COLUMNS + FEATURE_COLUMNS + DIAGNOSTIC_COLUMNS
)
"""Columns of :func:`score_bars`' result, in order."""


def _all_bars(bars: pd.DataFrame, history: pd.DataFrame | None) -> pd.DataFrame:
    """History before the batch, then the batch (first row per timestamp)."""
    batch = normalize_bars(bars)
    parts = [batch]
    if history is not None and len(history) and len(batch):
        hist = normalize_bars(history)
        parts.insert(0, hist[hist.index < batch.index.min()])
    frame = pd.concat(parts).sort_index(kind="stable")
    return frame[~frame.index.duplicated(keep="first")]


def score_bars(
    bars: pd.DataFrame,
    *,
    history: pd.DataFrame | None = None,
    thresholds: Thresholds | None = None,
    seed: int = 0,
    models: SymbolModels | ModelSchedule | None = None,
    calendar: CalendarLike | None = None,
    freq: str = "1D",
    exclude: pd.DatetimeIndex | None = None,
    stale_run: int = 5,
    refit: str = REFIT,
    jump_bound: float | None = None,
    symbol: str | None = None,
) -> pd.DataFrame:
    """Score one symbol's bars for data quality.

    Args:
        bars: The batch (bar schema; any order; duplicate rows are scored and flagged).
        history: Earlier bars of the symbol: the trailing statistics start from them and, when
            ``models`` is None, the models are fitted on them.
        thresholds: Calibrated thresholds; :data:`DEFAULT_THRESHOLDS` when None.
        seed: Seed of every random choice (forest, Stan, Prophet's sampling).
        models: The models to score with: one :class:`SymbolModels` for every bar (the daily
            path: the current period's models, prediction only), or a :class:`ModelSchedule`
            (each bar by its period's models). When None, the models of each ``refit``
            period of the batch are fitted here on ``history`` and the batch's bars strictly
            before the period start, so the result does not depend on the batch boundaries;
            periods with too little earlier data are scored by the rules only (``warmup``
            set, ``warmup_reason`` says why).
        calendar: Calendar of the symbol: enables ``missing_bars``, gap-aware and
            session-scaled features (early closes), and the asset class's ``jump_bound``.
        freq: Bar frequency.
        exclude: Timestamps left out of training when fitting here (false positives).
        stale_run: Run of identical closes flagged ``stale_price``.
        refit: Refit period when fitting here (pandas period alias; weekly by default).
        jump_bound: Largest genuine one-bar price ratio (default: the calendar's asset class,
            3 for equities).
        symbol: Named in error messages.

    Returns:
        Frame with the index of ``bars`` (same rows, same order) and :data:`SCORE_COLUMNS`:
        ``iforest`` (normalised to [0, 1]), ``prophet`` (distance outside the interval in
        interval widths, 0 inside; the larger of ``prophet_price`` and ``prophet_volume``),
        ``severity`` (``info``, ``warning`` or ``critical``), ``rules`` (names of the rules
        broken), ``flags`` (the rules plus each detector at or above its warning threshold:
        ``iforest``, ``prophet_price``, ``prophet_volume``), ``kind`` (the most likely
        anomaly kind, "" for none), ``market_event`` (False here; see
        :func:`~quant_pipelines.quality.mark_market_events`), ``warmup`` (no statistical
        level: features or models not available yet), the main features,
        ``statistical_level`` (0-2, the detectors' level before rules), ``log_return``,
        ``session_fraction`` and ``warmup_reason``.

    Raises:
        ValueError: If a bar lies outside the calendar's sessions (the message names the
            symbol and the calendar).
    """
    batch = SymbolBatch(bars, models, history, calendar, freq, stale_run, jump_bound)
    [part] = prepare_parts([(batch, symbol)])
    if models is None:
        part.schedule = fit_schedule(
            _all_bars(bars, history),
            starts=period_starts(part.prep.index, refit).unique().sort_values(),
            seed=seed,
            exclude=exclude,
            calendar=calendar,
            freq=freq,
            stale_run=stale_run,
            symbol=symbol,
        )
    return score_parts([part], thresholds=thresholds, seed=seed)[0]
