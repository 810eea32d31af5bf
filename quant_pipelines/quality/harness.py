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

Pure: no I/O; the CLI (``quant-pipelines quality evaluate``) prints the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from quant_pipelines.marketdata import SyntheticSource, load_universe
from quant_pipelines.quality.calibration import (
    CalibrationTargets,
    calibrate_thresholds,
    walk_forward_scores,
)
from quant_pipelines.quality.evaluation import EvaluationReport, evaluate
from quant_pipelines.quality.severity import Thresholds


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
