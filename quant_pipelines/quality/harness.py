"""Drives the evaluation on synthetic bars with injected, labelled anomalies.

For each symbol:

1. history before the evaluation period, with anomalies injected at the same rate (a
   production history has them too), is replayed walk-forward and calibrates the thresholds of
   each asset class (:func:`~quant_pipelines.quality.calibrate_thresholds` on the pooled
   out-of-sample scores of the class's symbols). The injected anomalies stand for what
   analysts confirm: once alerted, one leaves the later training windows (see
   ``confirmed`` of :func:`~quant_pipelines.quality.walk_forward_scores`), and the history's
   leave the calibration's clean sample;
2. the evaluation period with injected anomalies (``bars_with_anomalies``) is replayed as in
   production: the detectors are refitted every ``refit_every`` bars on the trailing window
   (history plus the evaluation bars seen so far) and each batch of ``batch`` bars is scored
   by prediction only;
3. the scores and labels go to :func:`~quant_pipelines.quality.evaluate`.

:func:`run_real_evaluation` does the same on real bars: it replays production (weekly refits,
daily scoring, the symbol's calendar, default thresholds) once on the clean bars and once on
a copy with seeded, labelled corruptions
(:func:`~quant_pipelines.quality.corruptions.plant_corruptions`), and measures the
:data:`~quant_pipelines.quality.goals.REAL_DATA_GOALS`.

Pure: no I/O; the CLI (``quant-pipelines quality evaluate``) prints the report.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from quant_pipelines.marketdata import SyntheticSource, load_universe
from quant_pipelines.marketdata.calendars import CalendarLike, get_calendar, session_bounds
from quant_pipelines.quality._eval_real import RealDataReport, evaluate_real
from quant_pipelines.quality.calibration import (
    CalibrationTargets,
    calibrate_thresholds,
    walk_forward_scores,
)
from quant_pipelines.quality.corruptions import plant_corruptions
from quant_pipelines.quality.evaluation import EvaluationReport, evaluate
from quant_pipelines.quality.severity import DEFAULT_THRESHOLDS, Thresholds


@dataclass(frozen=True)
class EvaluationRun:
    """A harness run: the report and what produced it.

    Attributes:
        report: Precision/recall per kind and false-positive rates.
        scores: Scores per symbol (evaluation period).
        labels: Injected labels per symbol.
        thresholds: Thresholds used per symbol (one calibration per asset class).
    """

    report: EvaluationReport
    scores: dict[str, pd.DataFrame] = field(repr=False)
    labels: dict[str, pd.DataFrame] = field(repr=False)
    thresholds: dict[str, Thresholds]


def run_evaluation(
    symbols: Sequence[str] | None = None,
    *,
    seed: int = 0,
    start: str = "2021-01-01",
    end: str = "2021-12-31",
    history_start: str = "2018-07-01",
    rate: float = 0.03,
    kinds: Sequence[str] | None = None,
    refit_every: int = 5,
    batch: int = 1,
    train_window: int = 250,
    targets: CalibrationTargets | None = None,
    with_prophet: bool = True,
) -> EvaluationRun:
    """Score seeded synthetic bars with injected anomalies and evaluate the scores.

    Args:
        symbols: Symbols of the default universe (all when None).
        seed: Seed of the bars, of the injection and of every fit.
        start: First session of the evaluation period (anomalies are injected here).
        end: Last session of the evaluation period.
        history_start: First session of the history before ``start``; it must hold more
            than ``train_window`` bars plus about 100 for the calibration.
        rate: Injected anomaly events per bar.
        kinds: Anomaly kinds to inject (all of ``ANOMALY_KINDS`` when None).
        refit_every: Bars between refits (weekly ≈ 5 for daily equity bars).
        batch: Bars per scoring call (1 = daily scoring).
        train_window: Training window of each refit.
        targets: Calibration targets (defaults of :class:`CalibrationTargets`).
        with_prophet: Include Prophet (False: Isolation Forest and rules only).

    Returns:
        The run, with its report.
    """
    universe = load_universe()
    names = list(symbols) if symbols is not None else list(universe.names)
    source = SyntheticSource(seed, universe=universe)
    last_history = (pd.Timestamp(start) - pd.Timedelta("1D")).strftime("%Y-%m-%d")
    common = {
        "refit_every": refit_every,
        "train_window": train_window,
        "seed": seed,
        "with_prophet": with_prophet,
    }
    histories: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    by_class: dict[str, list[pd.DataFrame]] = {}
    for name in names:
        sym = universe.get(name)
        history, confirmed = source.bars_with_anomalies(
            sym, history_start, last_history, rate=rate, kinds=kinds, seed=seed + 1
        )
        histories[name] = (history, confirmed)
        replay = walk_forward_scores(
            history,
            start=min(train_window, history.index.nunique() // 2),
            batch=max(batch, refit_every),
            calendar=sym.calendar,
            confirmed=pd.DatetimeIndex(confirmed["ts"]),
            **common,
        )
        # confirmed anomalies leave this symbol's sample before the class is pooled
        clean = replay[~replay.index.isin(pd.DatetimeIndex(confirmed["ts"]))]
        by_class.setdefault(sym.asset_class, []).append(clean)
    class_thresholds = {
        cls: calibrate_thresholds(pd.concat(parts), targets=targets)
        for cls, parts in by_class.items()
    }
    scores: dict[str, pd.DataFrame] = {}
    labels: dict[str, pd.DataFrame] = {}
    thresholds: dict[str, Thresholds] = {}
    for name in names:
        sym = universe.get(name)
        thresholds[name] = class_thresholds[sym.asset_class]
        bars, truth = source.bars_with_anomalies(sym, start, end, rate=rate, kinds=kinds)
        history, confirmed = histories[name]
        scores[name] = walk_forward_scores(
            pd.concat([history, bars]),
            start=history.index.nunique(),
            batch=batch,
            thresholds=thresholds[name],
            calendar=sym.calendar,
            confirmed=pd.DatetimeIndex(pd.concat([confirmed["ts"], truth["ts"]])),
            **common,
        )
        labels[name] = truth
    report = evaluate({n: (scores[n], labels[n]) for n in names})
    return EvaluationRun(report, scores, labels, thresholds)


@dataclass(frozen=True)
class RealEvaluationRun:
    """A real-data harness run: the report and what produced it.

    Attributes:
        report: Alert rates on the clean bars, recall per planted kind, precision.
        clean: Scores of the clean replay per symbol.
        corrupted: Scores of the corrupted replay per symbol.
        labels: Planted corruptions per symbol.
        thresholds: The thresholds every bar was scored with.
    """

    report: RealDataReport
    clean: dict[str, pd.DataFrame] = field(repr=False)
    corrupted: dict[str, pd.DataFrame] = field(repr=False)
    labels: dict[str, pd.DataFrame] = field(repr=False)
    thresholds: Thresholds


def early_close_times(calendar: CalendarLike, index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Bar timestamps of early-close sessions within the span of ``index``.

    Both conventions are returned: the session open (the project's daily timestamp) and the
    session label at midnight UTC (date-only files).

    Args:
        calendar: Calendar, calendar name or asset class.
        index: Bar timestamps (UTC).

    Returns:
        Sorted UTC timestamps.
    """
    cal = get_calendar(calendar)
    if not len(index):
        return pd.DatetimeIndex([], tz="UTC", name="ts")
    lo, hi = index.min().tz_convert(None).normalize(), index.max().tz_convert(None)
    early = pd.DatetimeIndex(cal.early_closes)
    labels = early[(early >= lo) & (early <= hi)].as_unit("ns")
    opens, _ = session_bounds(cal, labels)
    both = opens.union(labels.tz_localize("UTC")).sort_values()
    return pd.DatetimeIndex(both, name="ts")


def _replay(bars: pd.DataFrame, options: dict[str, Any]) -> pd.DataFrame:
    return walk_forward_scores(bars, **options)


def run_real_evaluation(
    bars: Mapping[str, pd.DataFrame],
    *,
    calendars: Mapping[str, CalendarLike] | CalendarLike = "XNYS",
    seed: int = 0,
    rate: float = 0.03,
    kinds: Sequence[str] | None = None,
    refit_every: int | str = 5,
    batch: int = 1,
    train_window: int = 250,
    thresholds: Thresholds | None = None,
    with_prophet: bool = True,
    stale_min: int = 5,
    workers: int = 1,
) -> RealEvaluationRun:
    """Replay production on real bars, clean and with planted corruptions, and evaluate.

    Per symbol, the first ``train_window`` bars (half the bars when there are fewer than
    ``2 * train_window``) only train; the rest are replayed with
    :func:`~quant_pipelines.quality.walk_forward_scores` (a refit every ``refit_every`` bars,
    ``batch`` bars per scoring call). The corrupted copy is replayed the same way, with the
    planted corruptions as what analysts confirm once alerted (``confirmed``).

    Args:
        bars: Real bars per symbol (bar schema).
        calendars: Calendar per symbol, or one for all (XNYS for equities).
        seed: Seed of the planting (``seed + k`` for the ``k``-th symbol) and of every fit.
        rate: Planted corruption events per scored bar.
        kinds: Corruption kinds (all of ``CORRUPTION_KINDS`` when None).
        refit_every: Bars between refits (5 = weekly for daily bars), or a period alias
            (``"W"``), as :func:`~quant_pipelines.quality.walk_forward_scores` takes it.
        batch: Bars per scoring call (1 = daily scoring).
        train_window: Training window of each refit.
        thresholds: Thresholds (``DEFAULT_THRESHOLDS`` when None).
        with_prophet: Include Prophet (False: Isolation Forest and rules only).
        stale_min: Identical closes from which a stale run must be flagged.
        workers: Processes replaying in parallel (the replays are independent; the result
            does not depend on it).

    Returns:
        The run, with its report.
    """
    thresholds = DEFAULT_THRESHOLDS if thresholds is None else thresholds
    options = {
        "refit_every": refit_every,
        "batch": batch,
        "train_window": train_window,
        "thresholds": thresholds,
        "seed": seed,
        "with_prophet": with_prophet,
    }
    jobs: list[tuple[pd.DataFrame, dict[str, Any]]] = []
    labels: dict[str, pd.DataFrame] = {}
    early: dict[str, pd.DatetimeIndex] = {}
    for k, (name, frame) in enumerate(bars.items()):
        calendar = calendars if not isinstance(calendars, Mapping) else calendars[name]
        stamps = np.unique(frame.index.asi8)
        start = min(train_window, len(stamps) // 2)
        first_row = int(np.searchsorted(np.sort(frame.index.asi8), stamps[start]))
        corrupted, labels[name] = plant_corruptions(
            frame, rate=rate, seed=seed + k, kinds=kinds, start=first_row
        )
        common = {**options, "start": start, "calendar": calendar}
        confirmed = pd.DatetimeIndex(labels[name]["ts"])
        jobs += [(frame, common), (corrupted, {**common, "confirmed": confirmed})]
        early[name] = early_close_times(calendar, frame.index)
    if workers > 1 and len(jobs) > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context) as pool:
            scores = list(pool.map(_replay, *zip(*jobs, strict=True)))
    else:
        scores = [_replay(frame, opts) for frame, opts in jobs]
    names = list(bars)
    clean = dict(zip(names, scores[0::2], strict=True))
    corrupted_scores = dict(zip(names, scores[1::2], strict=True))
    report = evaluate_real(
        clean,
        {n: (corrupted_scores[n], labels[n]) for n in names},
        early_closes=early,
        stale_min=stale_min,
    )
    return RealEvaluationRun(report, clean, corrupted_scores, labels, thresholds)
