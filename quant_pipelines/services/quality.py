"""The data-quality sentinel's use cases: score a batch, the dashboard, deliver alerts.

Plain functions over :class:`~quant_pipelines.storage.repositories.Repositories` and domain
inputs, each returning a report dataclass; the Dagster assets in ``defs/quality`` only turn
these reports into metadata. The weekly model refit and threshold calibration live in
:mod:`quant_pipelines.services.calibration`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from quant_pipelines._utils.time import utc, utc_now
from quant_pipelines.alerts import DeliverySummary, Transport, deliver_due, enqueue_alerts
from quant_pipelines.marketdata import Universe
from quant_pipelines.quality import (
    ProphetModels,
    SymbolBatch,
    SymbolModels,
    Thresholds,
    fit_models,
    mark_market_events,
    period_starts,
    score_symbols,
)
from quant_pipelines.storage import quality as qstore
from quant_pipelines.storage.anomaly_workflow import false_positive_rate, time_to_resolution
from quant_pipelines.storage.kpis import upsert_kpi
from quant_pipelines.storage.repositories import Repositories

#: Trailing history read before a batch (features' windows and the forest's training window).
HISTORY_DAYS = 500
#: Fewest bars (history + batch) needed to fit a symbol's Isolation Forest.
MIN_HISTORY_BARS = 60
#: Share of a batch's bars at warning or above beyond which the rate check warns.
MAX_ANOMALY_RATE = 0.05
SEED = 0


@dataclass(frozen=True)
class ScoringReport:
    """What :func:`score_partition` did to one batch of one asset class.

    Attributes:
        batch_id: The batch scored (``market_bars/<class>:<first>[..<last>]``).
        counts: Bars by severity (``info``, ``warning``, ``critical``).
        anomalies: The anomaly documents recorded (warning and critical bars).
        alerts_enqueued: Alert outbox entries inserted for the critical anomalies.
        thresholds_version: Version of the thresholds used (``default`` when none stored).
        unscored: Symbol -> bars available, for symbols with too little history to model.
        max_rate: The highest acceptable share of flagged bars.
    """

    batch_id: str
    counts: dict[str, int]
    anomalies: list[dict[str, Any]]
    alerts_enqueued: int
    thresholds_version: str
    unscored: dict[str, int]
    max_rate: float = MAX_ANOMALY_RATE

    @property
    def total(self) -> int:
        """Bars scored."""
        return sum(self.counts.values())

    @property
    def flagged(self) -> int:
        """Bars at warning or above."""
        return self.counts.get("warning", 0) + self.counts.get("critical", 0)

    @property
    def rate(self) -> float:
        """Share of the scored bars at warning or above (0 when nothing was scored)."""
        return self.flagged / self.total if self.total else 0.0

    @property
    def critical(self) -> list[dict[str, Any]]:
        """The critical anomalies of the batch."""
        return [a for a in self.anomalies if a["severity"] == "critical"]

    @property
    def latest(self) -> list[dict[str, Any]]:
        """The 20 most recent anomalies of the batch, newest first."""
        return sorted(self.anomalies, key=lambda a: a["ts"], reverse=True)[:20]


def scores_batch_id(asset_class: str, first_key: str, last_key: str) -> str:
    """The batch id of the bars partitions ``first_key..last_key`` of ``asset_class``."""
    batch_id = f"market_bars/{asset_class}:{first_key}"
    return batch_id if last_key == first_key else f"{batch_id}..{last_key}"


def _thresholds(repos: Repositories) -> Thresholds | None:
    doc = qstore.latest_thresholds(repos.db)
    if not doc:
        return None
    return Thresholds.from_dict({k: v for k, v in doc.items() if k != "saved_at"})


def _symbol_models(
    history: pd.DataFrame,
    calendar: str,
    before: pd.Timestamp,
    exclude: pd.DatetimeIndex,
    prophet_doc: dict[str, Any] | None,
) -> SymbolModels:
    """Isolation Forest of the batch's week (fitted on the bars before its Monday, so a bar is
    scored by the same model whatever the batch, analysts' false positives left out); Prophet
    loaded from the weekly refit (its stored band looked up, predict only outside it)."""
    fitted = fit_models(
        history,
        seed=SEED,
        exclude=exclude,
        calendar=calendar,
        with_prophet=False,
        before=before if (history.index < before).sum() >= MIN_HISTORY_BARS else None,
    )
    prophet = ProphetModels.from_json(prophet_doc["model_json"]) if prophet_doc else None
    return SymbolModels(iforest=fitted.iforest, prophet=prophet)


@dataclass(frozen=True)
class PartitionScores:
    """The scores of one batch of one asset class, before anything is written.

    Attributes:
        scores: Symbol -> its score frame (market events marked), in universe order.
        unscored: Symbol -> bars available, for symbols with too little history to model.
        thresholds: The stored thresholds used (None: the defaults).
    """

    scores: dict[str, pd.DataFrame]
    unscored: dict[str, int]
    thresholds: Thresholds | None


def partition_scores(
    repos: Repositories,
    universe: Universe,
    asset_class: str,
    *,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> PartitionScores:
    """Scores the bars of ``asset_class`` with ``start <= ts < end`` (nothing is written).

    The analysts' false positives and the stored Prophet models of all symbols are read in
    one query each; every symbol's week's forest is fitted; then all symbols are scored in
    one pass (:func:`~quant_pipelines.quality.score_symbols`: the forests in one vectorised
    pass, Prophet from the stored band) and the market events marked. Each symbol's frame is
    the one :func:`~quant_pipelines.quality.score_bars` gives it, bit for bit.

    Args:
        repos: The project's repositories.
        universe: The symbol universe (its ``asset_class`` symbols are scored).
        asset_class: ``equity``, ``fx`` or ``crypto``.
        start: First instant of the batch (UTC).
        end: End of the batch, exclusive (UTC).

    Returns:
        The scores.
    """
    lo, hi = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
    thresholds = _thresholds(repos)
    week = period_starts(pd.DatetimeIndex([lo]))[0]  # the batch's models are its week's
    frames, unscored = [], {}
    for symbol in universe.by_asset_class(asset_class):
        frame = repos.bars.read(symbol.name, lo - pd.Timedelta(days=HISTORY_DAYS), hi)
        if not (frame.index >= lo).any():
            continue
        if len(frame) < MIN_HISTORY_BARS:
            # Too little history to fit a detector: the blocking checks of market_bars
            # already vetted these bars; they are scored once history accumulates.
            unscored[symbol.name] = len(frame)
            continue
        frames.append((symbol, frame))
    names = [symbol.name for symbol, _ in frames]
    exclude = qstore.false_positive_times_many(repos.db, names)
    prophets = qstore.latest_prophets(repos.db, names)
    batches = {}
    for symbol, frame in frames:
        batch, history = frame[frame.index >= lo], frame[frame.index < lo]
        fit_on = history if len(history) >= MIN_HISTORY_BARS else frame
        models = _symbol_models(
            fit_on, symbol.calendar, week, exclude[symbol.name], prophets.get(symbol.name)
        )
        batches[symbol.name] = SymbolBatch(
            batch, models, history=history if len(history) else None, calendar=symbol.calendar
        )
    scored = score_symbols(batches, thresholds=thresholds, seed=SEED)
    scored = mark_market_events(scored, lambda s: universe.get(s).asset_class)
    return PartitionScores(scores=scored, unscored=unscored, thresholds=thresholds)


def _anomaly_rows(
    symbol: str, scores: pd.DataFrame, batch_id: str, thresholds: Thresholds | None
) -> list[dict[str, Any]]:
    """One anomaly document per bar at warning or above (rules win over statistics)."""
    rows = []
    flagged = scores[scores["severity"].isin(["warning", "critical"])]
    for ts, row in flagged[~flagged.index.duplicated(keep="last")].iterrows():
        rules = list(row["rules"] or [])
        rows.append(
            {
                "symbol": symbol,
                "ts": ts,
                "detector": "rules" if rules else "statistical",
                "rule": rules[0] if rules else (row.get("kind") or "outlier"),
                "rules": rules,
                "severity": row["severity"],
                "score": float(max(row["iforest"] or 0.0, row["prophet"] or 0.0)),
                "iforest": float(row["iforest"] or 0.0),
                "prophet": float(row["prophet"] or 0.0),
                "threshold": float(getattr(thresholds, "iforest_warning", 0.0) or 0.0),
                "kind": row.get("kind") or "",
                "market_event": bool(row.get("market_event", False)),
                "batch_id": batch_id,
            }
        )
    return rows


def score_partition(
    repos: Repositories,
    universe: Universe,
    asset_class: str,
    *,
    start: pd.Timestamp,
    end: pd.Timestamp,
    batch_id: str,
    now: dt.datetime | None = None,
) -> ScoringReport:
    """Scores the bars of ``asset_class`` with ``start <= ts < end`` and records the results.

    Scores are written beside the bars (``bars.quality``), warning and critical bars become
    anomalies (upserts: a re-run adds no duplicates), critical ones are enqueued as alerts,
    and the batch's counts by severity are set on its ``ingest_batches`` document.

    Args:
        repos: The project's repositories.
        universe: The symbol universe (its ``asset_class`` symbols are scored).
        asset_class: ``equity``, ``fx`` or ``crypto``.
        start: First instant of the batch (UTC).
        end: End of the batch, exclusive (UTC).
        batch_id: Id of the batch (see :func:`scores_batch_id`).
        now: Time recorded as ``scored_at`` (default: now).

    Returns:
        The scoring report.
    """
    qstore.ensure_quality_indexes(repos.db)
    result = partition_scores(repos, universe, asset_class, start=start, end=end)
    scored, thresholds = result.scores, result.thresholds
    now = now or dt.datetime.now(dt.UTC)
    counts = {"info": 0, "warning": 0, "critical": 0}
    anomalies: list[dict[str, Any]] = []
    qstore.write_bar_scores_many(repos.db, scored, scored_at=now)  # one bulk write
    for symbol, scores in scored.items():
        for level, n in scores["severity"].value_counts().items():
            counts[str(level)] = counts.get(str(level), 0) + int(n)
        rows = _anomaly_rows(symbol, scores, batch_id, thresholds)
        anomalies.extend(qstore.upsert_anomalies(repos.db, rows))
    critical = [a for a in anomalies if a["severity"] == "critical"]
    enqueued = enqueue_alerts(repos.db, critical)
    qstore.record_batch_scores(repos.db, batch_id, counts, scored_at=now)
    return ScoringReport(
        batch_id=batch_id,
        counts=counts,
        anomalies=anomalies,
        alerts_enqueued=enqueued.inserted,
        thresholds_version=thresholds.version if thresholds else "default",
        unscored=result.unscored,
    )


@dataclass(frozen=True)
class DashboardReport:
    """The sentinel's dashboard, as :func:`anomaly_dashboard` stored it in ``kpis``."""

    period: str
    by_severity: dict[str, int]
    by_status: dict[str, int]
    by_symbol: dict[str, int]
    anomalies_per_batch: float
    time_to_resolution_mean_s: float | None
    false_positive_rate: float | None
    latest: list[dict[str, Any]]
    kpis: dict[str, float | None]


def anomaly_dashboard(repos: Repositories, *, now: dt.datetime | None = None) -> DashboardReport:
    """Counts anomalies, resolution times and the false-positive rate; upserts the KPIs.

    Args:
        repos: The project's repositories.
        now: Time whose UTC date is the KPIs' period (default: now).

    Returns:
        The dashboard report (KPIs ``quality.*`` upserted under ``period``).
    """
    db = repos.db
    by_severity = qstore.anomaly_counts(db, "severity")
    by_status = qstore.anomaly_counts(db, "status")
    per_batch = qstore.flagged_per_batch(db)
    mean_per_batch = sum(per_batch) / len(per_batch) if per_batch else 0.0
    ttr, fpr = time_to_resolution(db), false_positive_rate(db)
    period = (utc(now) if now else utc_now()).date().isoformat()
    kpis = {
        "quality.anomalies_per_batch": mean_per_batch,
        "quality.time_to_resolution_s": ttr.mean_s,
        "quality.false_positive_rate": fpr.rate,
        "quality.open_anomalies": float(by_status.get("open", 0)),
        "quality.critical_anomalies": float(by_severity.get("critical", 0)),
    }
    for name, value in kpis.items():
        details = {"by_severity": by_severity}
        upsert_kpi(db, name, period, value, details=details, source="anomaly_dashboard")
    return DashboardReport(
        period=period,
        by_severity=by_severity,
        by_status=by_status,
        by_symbol=qstore.anomaly_counts(db, "symbol"),
        anomalies_per_batch=mean_per_batch,
        time_to_resolution_mean_s=ttr.mean_s,
        false_positive_rate=fpr.rate,
        latest=qstore.latest_anomalies(db, 20),
        kpis=kpis,
    )


def deliver_alerts(repos: Repositories, transports: Mapping[str, Transport]) -> DeliverySummary:
    """Delivers the due alerts of the outbox once through ``transports`` (by channel).

    A channel without a transport keeps its alerts pending.
    """
    return deliver_due(repos.db, transports=transports)
