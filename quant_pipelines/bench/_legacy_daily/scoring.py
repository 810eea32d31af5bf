"""Scoring one symbol's bars: rules, features, Isolation Forest, Prophet and severity.

``score_bars`` is the contract the Dagster asset calls. In production the weekly job fits
:class:`SymbolModels` (and stores the Prophet part as JSON) and calibrates the thresholds; the
daily job passes both in, so scoring only predicts. Every bar is scored from the bars up to it
and the models of its period (:class:`ModelSchedule`), so the result does not depend on how
the bars are split into batches.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from quant_pipelines.bench._legacy_daily._jumps import jump_bound_for
from quant_pipelines.bench._legacy_daily._kinds import assign_kinds
from quant_pipelines.bench._legacy_daily._models import SymbolModels, fit_models
from quant_pipelines.bench._legacy_daily._prepare import Prepared, prepare
from quant_pipelines.bench._legacy_daily._schedule import (
    REFIT,
    ModelSchedule,
    fit_schedule,
    period_starts,
)
from quant_pipelines.bench._legacy_daily.features import (
    WINDOW,
    features_from_prepared,
    trailing_stats,
)
from quant_pipelines.bench._legacy_daily.rules import rule_flags, rules_list
from quant_pipelines.bench._legacy_daily.severity import (
    DEFAULT_THRESHOLDS,
    Thresholds,
    combine_levels,
    detector_flags,
    jump_level,
    level_names,
    rule_level,
    statistical_level,
)
from quant_pipelines.marketdata.calendars import CalendarLike
from quant_pipelines.marketdata.schema import normalize_bars

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

FEATURE_COLUMNS: tuple[str, ...] = ("ret_z", "move_z", "gap_move_z", "range_z", "volume_z")
"""The main standardised features, copied from the feature frame."""

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

_WARMUP_REASON = f"warm-up: the trailing statistics need {WINDOW + 1} usable bars before this one"


def _all_bars(bars: pd.DataFrame, history: pd.DataFrame | None) -> pd.DataFrame:
    """History before the batch, then the batch (first row per timestamp)."""
    batch = normalize_bars(bars)
    parts = [batch]
    if history is not None and len(history) and len(batch):
        hist = normalize_bars(history)
        parts.insert(0, hist[hist.index < batch.index.min()])
    frame = pd.concat(parts).sort_index(kind="stable")
    return frame[~frame.index.duplicated(keep="first")]


def _detector_scores(
    schedule: ModelSchedule, prep: Prepared, feats: pd.DataFrame, seed: int
) -> tuple[np.ndarray, pd.DataFrame, np.ndarray, list[str]]:
    """Forest and Prophet scores per batch row, each by the models of the row's period."""
    index = prep.bars.index
    n = len(index)
    iforest = np.zeros(n)
    prophet = pd.DataFrame(0.0, index=index, columns=["prophet_price", "prophet_volume", "prophet"])
    missing = np.zeros(n, dtype=bool)
    reasons = [""] * n
    period = schedule.positions(index)
    fraction = prep.fraction[prep.row_to_frame]
    for p in np.unique(period):
        rows = np.flatnonzero(period == p)
        models = schedule.models[p] if p >= 0 else None
        if models is None:
            missing[rows] = True
            why = schedule.reasons[p] if p >= 0 else "no models: the bar is before the schedule"
            for r in rows:
                reasons[r] = why
            continue
        iforest[rows] = models.iforest.score(feats.iloc[rows])
        if models.prophet is not None:
            scored = models.prophet.score(
                prep.bars.iloc[rows], seed=seed, session_fraction=fraction[rows]
            )
            prophet.iloc[rows] = scored[list(prophet.columns)].to_numpy()
    return iforest, prophet, missing, reasons


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
    prep = prepare(
        bars, history=history, calendar=calendar, freq=freq, stale_run=stale_run, symbol=symbol
    )
    bound = jump_bound_for(calendar) if jump_bound is None else jump_bound
    stats = trailing_stats(prep)
    feats = features_from_prepared(prep, stats=stats)
    flags = rule_flags(prep, sigma=stats["sigma"], jump_bound=bound)
    index = prep.bars.index
    if models is None:
        models = fit_schedule(
            _all_bars(bars, history),
            starts=period_starts(index, refit).unique().sort_values(),
            seed=seed,
            exclude=exclude,
            calendar=calendar,
            freq=freq,
            stale_run=stale_run,
            symbol=symbol,
        )
    elif isinstance(models, SymbolModels):
        first = index.min() if len(index) else pd.Timestamp(0, tz="UTC")
        models = ModelSchedule.single(first, models)
    iforest, prophet, missing, reasons = _detector_scores(models, prep, feats, seed)
    thresholds = DEFAULT_THRESHOLDS if thresholds is None else thresholds
    feature_warmup = feats["warmup"].to_numpy(dtype=bool)
    warmup = feature_warmup | missing
    reasons = [_WARMUP_REASON if w else r for w, r in zip(feature_warmup, reasons, strict=True)]
    detector_scores = (
        iforest,
        prophet["prophet_price"].to_numpy(),
        prophet["prophet_volume"].to_numpy(),
    )
    stat = statistical_level(*detector_scores, thresholds, warmup=warmup)
    level = combine_levels(rule_level(flags), stat, jump=jump_level(flags))
    rules = rules_list(flags)
    above = detector_flags(*detector_scores, thresholds)
    names = np.array(list(above), dtype=object)
    fired = np.column_stack(list(above.values())) & ~warmup[:, None]
    kinds = assign_kinds(
        rules,
        possible_split=flags["possible_split"].to_numpy(dtype=bool),
        statistical=stat,
        fired={k: fired[:, i] for i, k in enumerate(above)},
        feats=feats,
    )
    out = pd.DataFrame(
        {
            "iforest": iforest,
            "prophet": prophet["prophet"].to_numpy(),
            "prophet_price": detector_scores[1],
            "prophet_volume": detector_scores[2],
            "severity": level_names(level),
            "rules": rules,
            "flags": [r + names[f].tolist() for r, f in zip(rules, fired, strict=True)],
            "kind": kinds,
            "market_event": np.zeros(len(index), dtype=bool),
            "warmup": warmup,
            "gap_before": flags["gap_before"].to_numpy(),
        },
        index=index,
    )
    for col in FEATURE_COLUMNS:
        out[col] = feats[col].to_numpy()
    out["statistical_level"] = stat
    out["log_return"] = feats["log_return"].to_numpy()
    out["session_fraction"] = feats["session_fraction"].to_numpy()
    out["warmup_reason"] = reasons
    return out
