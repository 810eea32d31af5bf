"""The weekly threshold calibration as production runs it, with the analysts' verdicts.

Both detectors are replayed walk-forward on each symbol's recent history (Prophet included, so
its thresholds are calibrated rather than left at their floors), reading the analysts'
statuses from MongoDB: bars marked false positive leave every training window, bars they
confirmed (resolved anomalies) leave the clean sample. The pooled, out-of-sample scores of the
symbols then set the thresholds (:func:`quant_pipelines.quality.calibrate_thresholds`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd
from pymongo.database import Database

from quant_pipelines.quality import calibrate_thresholds
from quant_pipelines.quality.calibration import walk_forward_scores
from quant_pipelines.quality.prophet_models import TRAIN_WINDOW
from quant_pipelines.quality.severity import Thresholds
from quant_pipelines.storage import quality as qstore

WARMUP_FEATURES = 20
"""Bars the features need in front of a training window."""


@dataclass(frozen=True)
class CalibrationReport:
    """What :func:`recalibrate` returns.

    Attributes:
        thresholds: The calibrated thresholds (not yet stored).
        scores: The pooled out-of-sample scores, symbol in column ``symbol``, the analysts'
            confirmed anomalies already removed.
        symbols: Symbols whose history took part.
        skipped: Symbol -> why it did not (too little history).
        excluded: Symbol -> bars left out of the training windows (false positives).
        confirmed: Symbol -> bars left out of the clean sample (confirmed anomalies).
    """

    thresholds: Thresholds
    scores: pd.DataFrame
    symbols: list[str]
    skipped: dict[str, str]
    excluded: dict[str, int]
    confirmed: dict[str, int]


def recalibrate(
    db: Database,
    histories: Mapping[str, tuple[pd.DataFrame, str | None]],
    *,
    calibration_bars: int,
    as_of: pd.Timestamp | None = None,
    refit_every: int | str = 20,
    batch: int = 20,
    seed: int = 0,
    with_prophet: bool = True,
    min_bars: int | None = None,
) -> CalibrationReport:
    """Calibrates thresholds on the last ``calibration_bars`` of each symbol's history.

    Args:
        db: The project database (analyst statuses are read from ``anomalies``).
        histories: Symbol -> (bars, exchange calendar name or None).
        calibration_bars: Bars per symbol scored out of sample (the rest trains the models).
        as_of: Date of the version string (default: the last scored bar).
        refit_every: Refit period of the replay (bars, or a period alias such as ``"W"``).
        batch: Bars per scoring call (changes speed only, never the scores).
        seed: Seed of every fit.
        with_prophet: Replay the Prophet models too (production); ``False`` replays the
            forest alone and keeps the Prophet thresholds at their floors.
        min_bars: Fewest clean bars accepted (default: the calibration's).

    Returns:
        The report; store ``report.thresholds`` with ``storage.quality.save_thresholds``.

    Raises:
        ValueError: If no symbol has enough history, or too few clean bars remain.
    """
    parts, skipped, excluded, confirmed = [], {}, {}, {}
    for symbol, (bars, calendar) in histories.items():
        n = len(bars)
        if n < TRAIN_WINDOW + WARMUP_FEATURES:
            skipped[symbol] = f"{n} bars, the replay needs {TRAIN_WINDOW + WARMUP_FEATURES}"
            continue
        fps = qstore.false_positive_times(db, symbol)
        scores = walk_forward_scores(
            bars,
            start=max(TRAIN_WINDOW, n - calibration_bars),
            refit_every=refit_every,
            batch=batch,
            seed=seed,
            calendar=calendar,
            exclude=fps,
            with_prophet=with_prophet,
        )
        known = qstore.confirmed_times(db, symbol)
        keep = ~scores.index.isin(known)
        excluded[symbol], confirmed[symbol] = len(fps), int((~keep).sum())
        parts.append(scores.loc[keep].assign(symbol=symbol))
    if not parts:
        raise ValueError(f"not enough history to calibrate thresholds: {skipped}")
    pooled = pd.concat(parts)
    kwargs = {} if min_bars is None else {"min_bars": min_bars}
    thresholds = calibrate_thresholds(pooled, as_of=as_of, **kwargs)
    return CalibrationReport(
        thresholds=thresholds,
        scores=pooled,
        symbols=[str(s) for s in pooled["symbol"].unique()],
        skipped=skipped,
        excluded=excluded,
        confirmed=confirmed,
    )
