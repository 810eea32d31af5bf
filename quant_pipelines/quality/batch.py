"""Scoring many symbols' bars in one pass: the daily batch of the sentinel.

:func:`score_symbols` gives each symbol exactly the frame :func:`~quant_pipelines.quality.
score_bars` gives it (the tests compare them bit for bit), with the per-symbol Python work cut
to the features and rules, which are the symbol's own:

* the Isolation Forest scores the rows of every symbol that shares a forest (a pooled model of
  an asset class, or the same model passed twice) in one call, and all forests of the batch in
  one vectorised descent (``_forest``);
* Prophet is looked up in the band stored with the models at the weekly fit (``_band``), and
  predicted only for bars outside it;
* severity, flags and kinds are computed once over the rows of all symbols.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from quant_pipelines.marketdata.calendars import CalendarLike
from quant_pipelines.quality._forest import forest_scores
from quant_pipelines.quality._jumps import jump_bound_for
from quant_pipelines.quality._models import SymbolModels
from quant_pipelines.quality._prepare import Prepared, PrepareInput, prepare_many
from quant_pipelines.quality._schedule import ModelSchedule
from quant_pipelines.quality._verdict import Detectors, verdict_frames
from quant_pipelines.quality.features import (
    IFOREST_FEATURES,
    feature_arrays_many,
    model_matrix,
    trailing_stats_many,
)
from quant_pipelines.quality.iforest import IForestModel
from quant_pipelines.quality.rules import rule_arrays
from quant_pipelines.quality.severity import Thresholds

_BEFORE_SCHEDULE = "no models: the bar is before the schedule"


@dataclass(frozen=True)
class SymbolBatch:
    """One symbol's part of a batch.

    Attributes:
        bars: The symbol's bars to score (bar schema; any order, duplicates allowed).
        models: The models to score with (see :func:`~quant_pipelines.quality.score_bars`;
            None only inside ``score_bars``, which fits them).
        history: Earlier bars of the symbol (the trailing statistics start from them).
        calendar: Calendar of the symbol.
        freq: Bar frequency.
        stale_run: Run of identical closes flagged ``stale_price``.
        jump_bound: Largest genuine one-bar price ratio (default: the calendar's class).
    """

    bars: pd.DataFrame
    models: SymbolModels | ModelSchedule | None
    history: pd.DataFrame | None = None
    calendar: CalendarLike | None = None
    freq: str = "1D"
    stale_run: int = 5
    jump_bound: float | None = None


@dataclass
class _Part:
    """A symbol's prepared batch, its features, rules and models per row."""

    prep: Prepared
    feats: dict[str, np.ndarray]
    flags: dict[str, np.ndarray]
    schedule: SymbolModels | ModelSchedule | None
    detectors: Detectors


def prepare_parts(
    inputs: list[tuple[SymbolBatch, str | None]],
) -> list[_Part]:
    """Prepare symbols: the views (in one pass), the features, the rules, the schedules.

    A part whose ``models`` is None gets no schedule: the caller sets it before scoring.
    """
    preps = prepare_many(
        [
            PrepareInput(b.bars, b.history, b.calendar, b.freq, b.stale_run, symbol)
            for b, symbol in inputs
        ]
    )
    parts = []
    all_stats = trailing_stats_many(preps)
    all_feats = feature_arrays_many(preps, all_stats)
    for (batch, _), prep, stats, feats in zip(inputs, preps, all_stats, all_feats, strict=True):
        bound = jump_bound_for(batch.calendar) if batch.jump_bound is None else batch.jump_bound
        flags = rule_arrays(prep, sigma=stats["sigma"], jump_bound=bound)
        parts.append(_Part(prep, feats, flags, batch.models, Detectors.empty(len(prep.index))))
    return parts


def score_parts(
    parts: list[_Part], *, thresholds: Thresholds | None, seed: int
) -> list[pd.DataFrame]:
    """Detector scores of all parts (forests grouped, Prophet from the band), then verdicts."""
    forests: dict[int, tuple[IForestModel, list[tuple[_Part, np.ndarray]]]] = {}
    for part in parts:
        det, prep = part.detectors, part.prep
        fraction = prep.fraction[prep.row_to_frame]
        for rows, models, why in _periods(part):
            if models is None:
                det.missing[rows] = True
                for r in rows:
                    det.reasons[r] = why
                continue
            key = id(models.iforest.estimator)
            forests.setdefault(key, (models.iforest, []))[1].append((part, rows))
            if models.prophet is not None:
                det.prophet_price[rows], det.prophet_volume[rows] = models.prophet.distances(
                    prep.index.asi8[rows],
                    prep.values[rows, 3],
                    prep.values[rows, 4],
                    fraction[rows],
                    seed=seed,
                )
    _score_forests(list(forests.values()))
    return verdict_frames(
        [(p.prep.index, p.feats, p.flags, p.detectors) for p in parts], thresholds
    )


def _periods(part: _Part) -> list[tuple[np.ndarray, SymbolModels | None, str]]:
    """Rows of each refit period of the part, its models and why it has none."""
    schedule, n = part.schedule, len(part.prep.index)
    if isinstance(schedule, SymbolModels):  # one period from the first bar: every row
        return [(np.arange(n), schedule, "")] if n else []
    period = schedule.positions(part.prep.index)
    out = []
    for p in np.unique(period):
        models = schedule.models[p] if p >= 0 else None
        why = (schedule.reasons[p] if p >= 0 else _BEFORE_SCHEDULE) if models is None else ""
        out.append((np.flatnonzero(period == p), models, why))
    return out


def _score_forests(groups: list[tuple[IForestModel, list[tuple[_Part, np.ndarray]]]]) -> None:
    """One forest call per distinct forest, on the stacked rows of every part that uses it."""
    matrices = []
    for _, members in groups:
        feats = [
            model_matrix({k: part.feats[k][rows] for k in IFOREST_FEATURES})
            for part, rows in members
        ]
        matrices.append(np.concatenate(feats) if len(feats) > 1 else feats[0])
    scores = forest_scores([(m.estimator, x) for (m, _), x in zip(groups, matrices, strict=True)])
    for (_, members), raw in zip(groups, scores, strict=True):
        start = 0
        for part, rows in members:
            chunk = np.clip(raw[start : start + len(rows)], 0.0, 1.0)
            start += len(rows)
            warm = part.feats["warmup"][rows]
            part.detectors.iforest[rows] = np.where(warm, 0.0, chunk)


def score_symbols(
    batches: Mapping[str, SymbolBatch],
    *,
    thresholds: Thresholds | None = None,
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """Score many symbols' bars in one pass (the daily batch).

    Args:
        batches: Symbol -> its bars, history, models and calendar.
        thresholds: Calibrated thresholds; the defaults when None.
        seed: Seed of Prophet's sampling for bars outside the stored band.

    Returns:
        Symbol -> the frame :func:`~quant_pipelines.quality.score_bars` returns for the same
        inputs (identical, bit for bit), in the order of ``batches``.

    Raises:
        ValueError: If a symbol's bars are not in the bar schema or lie outside its
            calendar's sessions (the message names the symbol).
    """
    parts = prepare_parts([(batch, name) for name, batch in batches.items()])
    frames = score_parts(parts, thresholds=thresholds, seed=seed)
    return dict(zip(batches, frames, strict=True))
