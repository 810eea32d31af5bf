"""The weekly threshold calibration as production runs it, with the analysts' verdicts.

Both detectors are replayed walk-forward on each symbol's recent history (Prophet included, so
its thresholds are calibrated rather than left at their floors), reading the analysts'
statuses from MongoDB: bars marked false positive leave every training window, bars they
confirmed (resolved anomalies) leave the clean sample. The pooled, out-of-sample scores of the
symbols then set the thresholds (:func:`quant_pipelines.quality.calibrate_thresholds`).

The weekly maintenance of the sentinel's models lives here too: :func:`refit_quality_models`
(Prophet per symbol) and :func:`calibrate_and_store` (read the history, recalibrate, store).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd
from pymongo.database import Database

from quant_pipelines.marketdata import Universe
from quant_pipelines.quality import calibrate_thresholds, fit_prophet
from quant_pipelines.quality.calibration import walk_forward_scores
from quant_pipelines.quality.prophet_models import TRAIN_WINDOW
from quant_pipelines.quality.severity import Thresholds
from quant_pipelines.storage import quality as qstore
from quant_pipelines.storage.repositories import Repositories

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


@dataclass(frozen=True)
class ThresholdsUpdate:
    """What :func:`calibrate_and_store` stored: the new version and its calibration."""

    version: str
    report: CalibrationReport


def calibrate_and_store(
    repos: Repositories,
    universe: Universe,
    *,
    history_days: int,
    calibration_bars: int,
    now: pd.Timestamp | None = None,
    seed: int = 0,
) -> ThresholdsUpdate:
    """The weekly calibration: reads each symbol's recent bars, recalibrates, stores.

    Args:
        repos: The project's repositories.
        universe: The symbols whose history takes part.
        history_days: Days of bars before ``now`` replayed per symbol.
        calibration_bars: Bars per symbol scored out of sample (see :func:`recalibrate`).
        now: End of the history and date of the version (default: now).
        seed: Seed of every fit.

    Returns:
        The stored version with its report.

    Raises:
        ValueError: If no symbol has enough history, or too few clean bars remain.
    """
    end = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now).tz_convert("UTC")
    start = end - pd.Timedelta(days=history_days)
    histories = {s.name: (repos.bars.read(s.name, start), s.calendar) for s in universe}
    report = recalibrate(
        repos.db, histories, calibration_bars=calibration_bars, as_of=end, seed=seed
    )
    t = report.thresholds
    version = qstore.save_thresholds(repos.db, t, calibrated_on_bars=int(t.n_bars))
    return ThresholdsUpdate(version=version, report=report)


@dataclass(frozen=True)
class RefitReport:
    """What :func:`refit_quality_models` stored: the version, who was fitted, who was not."""

    version: str
    fitted: list[str]
    skipped: dict[str, str] = field(default_factory=dict)


def refit_quality_models(
    repos: Repositories,
    universe: Universe,
    *,
    history_days: int,
    now: pd.Timestamp | None = None,
    seed: int = 0,
) -> RefitReport:
    """Fits each symbol's Prophet models (log price, log volume) and stores them as JSON.

    The JSON carries the forecast band of every session until the next weekly fit (and a
    week of margin), so the daily scoring looks it up instead of running Prophet; the stored
    document records the band's last bar time as ``band_until``.

    Args:
        repos: The project's repositories.
        universe: The symbols to fit.
        history_days: Days of bars before ``now`` to train on.
        now: End of the training window and source of the ISO-week version (default: now).

    Returns:
        The refit report; symbols with too little history are skipped with the reason.
    """
    qstore.ensure_quality_indexes(repos.db)
    end = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now).tz_convert("UTC")
    version = end.strftime("%G-W%V")
    fitted, skipped = [], {}
    for symbol in universe:
        history = repos.bars.read(symbol.name, end - pd.Timedelta(days=history_days))
        fps = qstore.false_positive_times(repos.db, symbol.name)
        try:
            models = fit_prophet(history, seed=seed, exclude=fps, calendar=symbol.calendar)
        except ValueError as exc:
            skipped[symbol.name] = str(exc)
            continue
        band = models.band  # the forecast band until the next weekly fit travels in the JSON
        qstore.save_prophet(
            repos.db,
            symbol.name,
            version,
            models.to_json(),
            fitted_through=pd.Timestamp(models.fitted_through).to_pydatetime(),
            n_train=int(models.n_train),
            band_until=None if band is None or not len(band.stamps) else band.until(),
        )
        fitted.append(symbol.name)
    return RefitReport(version=version, fitted=fitted, skipped=skipped)
