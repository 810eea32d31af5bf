"""Scoring one symbol's bars: rules, features, Isolation Forest, Prophet and severity.

``score_bars`` is the contract the Dagster asset calls. In production the weekly job fits
:class:`SymbolModels` (and stores the Prophet part as JSON) and calibrates the thresholds; the
daily job passes both in, so scoring only predicts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from quant_pipelines.bench._legacy_quality._prepare import prepare
from quant_pipelines.bench._legacy_quality.calendars import CalendarLike
from quant_pipelines.bench._legacy_quality.features import features_from_prepared
from quant_pipelines.bench._legacy_quality.iforest import IForestModel, fit_iforest, training_rows
from quant_pipelines.bench._legacy_quality.prophet_models import (
    TRAIN_WINDOW,
    ProphetModels,
    fit_prophet,
)
from quant_pipelines.bench._legacy_quality.rules import RULE_KINDS, RULES, rule_flags, rules_list
from quant_pipelines.bench._legacy_quality.severity import (
    DEFAULT_THRESHOLDS,
    Thresholds,
    combine_levels,
    detector_flags,
    level_names,
    rule_level,
    statistical_level,
)

_FEATURE_COLUMNS: tuple[str, ...] = ("ret_z", "move_z", "gap_move_z", "range_z", "volume_z")
"""The feature columns copied into the result."""

SCORE_COLUMNS: tuple[str, ...] = (
    "iforest",
    "prophet",
    "prophet_price",
    "prophet_volume",
    "severity",
    "rules",
    "flags",
    "kind",
    "market_event",
    "warmup",
    "gap_before",
    *_FEATURE_COLUMNS,
    "statistical_level",
)
"""Columns of :func:`score_bars`' result, in order."""


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


def fit_models(
    history: pd.DataFrame,
    *,
    seed: int = 0,
    exclude: pd.DatetimeIndex | None = None,
    calendar: CalendarLike | None = None,
    freq: str = "1D",
    window: int = TRAIN_WINDOW,
    with_prophet: bool = True,
) -> SymbolModels:
    """Fit one symbol's detectors on the trailing ``window`` bars of its history.

    Bars that break a rule and bars in ``exclude`` (analyst-marked false positives) are left
    out of the training window.

    Args:
        history: Bars of the symbol.
        seed: Seed of the forest and of Stan's optimiser.
        exclude: Timestamps to leave out of training.
        calendar: Calendar of the symbol (gap-aware features).
        freq: Bar frequency.
        window: Training window in bars (the features' trailing window comes on top).
        with_prophet: Fit Prophet too (False: Isolation Forest only).

    Returns:
        The fitted models.
    """
    prep = prepare(history, calendar=calendar, freq=freq)
    feats = features_from_prepared(prep)
    flags = rule_flags(prep)
    broken = flags[list(RULES)].to_numpy(dtype=bool).any(axis=1)
    drop = broken | _exclude_mask(feats.index, exclude)
    train = training_rows(feats, exclude=drop).iloc[-window:]
    iforest = fit_iforest(train, seed=seed)
    prophet = (
        fit_prophet(history, seed=seed, window=window, exclude=exclude) if with_prophet else None
    )
    return SymbolModels(iforest, prophet)


def _kinds(
    rules: list[list[str]], level: np.ndarray, fired: dict[str, np.ndarray], feats: pd.DataFrame
) -> np.ndarray:
    """Most likely kind per bar: the first rule broken, else what the detectors point at.

    The forest's verdict is attributed to the price (``price_spike``) or the volume
    (``volume_burst``), whichever feature is more extreme; a Prophet-only verdict to the model
    that fired (``volume_burst``, or ``price_level`` for the price drifting out of its band).
    """
    price = np.maximum(
        np.abs(np.nan_to_num(feats["move_z"].to_numpy())),
        np.abs(np.nan_to_num(feats["gap_move_z"].to_numpy())),
    )
    volume = np.abs(np.nan_to_num(feats["volume_z"].to_numpy()))
    forest_kind = np.where(price >= volume, "price_spike", "volume_burst")
    stat_kind = np.where(
        fired["iforest"],
        forest_kind,
        np.where(fired["prophet_volume"], "volume_burst", "price_level"),
    )
    out = np.full(len(rules), "", dtype=object)
    for i, names in enumerate(rules):
        if names:
            out[i] = RULE_KINDS[names[0]]
        elif level[i] > 0:
            out[i] = stat_kind[i]
    return out


def score_bars(
    bars: pd.DataFrame,
    *,
    history: pd.DataFrame | None = None,
    thresholds: Thresholds | None = None,
    seed: int = 0,
    models: SymbolModels | None = None,
    calendar: CalendarLike | None = None,
    freq: str = "1D",
    exclude: pd.DatetimeIndex | None = None,
    stale_run: int = 5,
) -> pd.DataFrame:
    """Score one symbol's bars for data quality.

    Args:
        bars: The batch (bar schema; any order; duplicate rows are scored and flagged).
        history: Earlier bars of the symbol: the trailing statistics start from them and, when
            ``models`` is None, the detectors are fitted on them. Without it the detectors are
            fitted on ``bars`` itself (the first ~20 bars are then a warm-up).
        thresholds: Calibrated thresholds; :data:`DEFAULT_THRESHOLDS` when None.
        seed: Seed of every random choice (forest, Stan, Prophet's sampling).
        models: Pre-fitted detectors (the daily path: prediction only).
        calendar: Calendar of the symbol; enables ``missing_bars`` and gap-aware features.
        freq: Bar frequency.
        exclude: Timestamps left out of training when fitting here (false positives).
        stale_run: Minimum run of identical closes flagged ``stale_price``.

    Returns:
        Frame with the index of ``bars`` (same rows, same order) and :data:`SCORE_COLUMNS`:
        ``iforest`` (normalised to [0, 1]), ``prophet`` (distance outside the interval in
        interval widths, 0 inside; the larger of ``prophet_price`` and ``prophet_volume``),
        ``severity`` (``info``, ``warning`` or ``critical``), ``rules`` (names of the rules
        broken), ``flags`` (the rules plus each detector at or above its warning threshold:
        ``iforest``, ``prophet_price``, ``prophet_volume``), ``kind`` (the most likely
        anomaly kind, ``price_level`` for a Prophet-price-only alert, "" for none),
        ``market_event`` (False here; see
        :func:`~quant_pipelines.quality.mark_market_events`), the main features and
        ``statistical_level`` (0-2, the detectors' level before rules).
    """
    prep = prepare(bars, history=history, calendar=calendar, freq=freq, stale_run=stale_run)
    if models is None:
        train = history if history is not None and len(history) else prep.bars
        models = fit_models(train, seed=seed, exclude=exclude, calendar=calendar, freq=freq)
    thresholds = DEFAULT_THRESHOLDS if thresholds is None else thresholds
    feats = features_from_prepared(prep)
    flags = rule_flags(prep)
    index = prep.bars.index
    iforest = models.iforest.score(feats)
    if models.prophet is not None:
        prophet = models.prophet.score(prep.bars, seed=seed)
    else:
        prophet = pd.DataFrame(0.0, index=index, columns=["prophet_price", "prophet_volume"])
        prophet["prophet"] = 0.0
    warmup = feats["warmup"].to_numpy(dtype=bool)
    detector_scores = (
        iforest,
        prophet["prophet_price"].to_numpy(),
        prophet["prophet_volume"].to_numpy(),
    )
    stat = statistical_level(*detector_scores, thresholds, warmup=warmup)
    level = combine_levels(rule_level(flags), stat)
    rules = rules_list(flags)
    above = detector_flags(*detector_scores, thresholds)
    names = np.array(list(above), dtype=object)
    fired = np.column_stack(list(above.values())) & ~warmup[:, None]
    flag_lists = [r + names[f].tolist() for r, f in zip(rules, fired, strict=True)]
    out = pd.DataFrame(
        {
            "iforest": iforest,
            "prophet": prophet["prophet"].to_numpy(),
            "prophet_price": prophet["prophet_price"].to_numpy(),
            "prophet_volume": prophet["prophet_volume"].to_numpy(),
            "severity": level_names(level),
            "rules": rules,
            "flags": flag_lists,
            "kind": _kinds(rules, level, above, feats),
            "market_event": np.zeros(len(index), dtype=bool),
            "warmup": warmup,
            "gap_before": flags["gap_before"].to_numpy(),
        },
        index=index,
    )
    for col in _FEATURE_COLUMNS:
        out[col] = feats[col].to_numpy()
    out["statistical_level"] = stat
    return out
