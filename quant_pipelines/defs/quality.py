"""Data-quality sentinel wiring: scores beside the bars, models, thresholds, dashboard, alerts."""

# No `from __future__ import annotations` here: Dagster 1.13 resolves the Config and context
# parameter annotations of assets at definition time, and PEP 563 strings defeat it.

import datetime as dt

import dagster as dg
import pandas as pd
from pymongo.database import Database

from quant_pipelines.alerts import deliver_due, enqueue_alerts, transports_from_settings
from quant_pipelines.defs.market_data import WORKLOAD_TAG, asset_classes_in_universe
from quant_pipelines.defs.market_data import market_bars_key as bars_key
from quant_pipelines.defs.partitions import trading_day_partitions
from quant_pipelines.defs.resources import MarketDataSource, MongoResource
from quant_pipelines.marketdata import load_universe
from quant_pipelines.quality import (
    ProphetModels,
    SymbolModels,
    Thresholds,
    fit_models,
    fit_prophet,
    mark_market_events,
    period_starts,
    score_bars,
)
from quant_pipelines.services.calibration import recalibrate
from quant_pipelines.settings import load_settings
from quant_pipelines.storage import quality as qstore
from quant_pipelines.storage.anomaly_workflow import false_positive_rate, time_to_resolution
from quant_pipelines.storage.kpis import upsert_kpi

#: Trailing history read before a batch (features' windows and the forest's training window).
HISTORY_DAYS = 500
#: Fewest bars (history + batch) needed to fit a symbol's Isolation Forest.
MIN_HISTORY_BARS = 60
#: Share of a batch's bars at warning or above beyond which the rate check warns.
MAX_ANOMALY_RATE = 0.05
SEED = 0


def scores_key(asset_class: str) -> dg.AssetKey:
    """Asset key of the anomaly scores of one asset class."""
    return dg.AssetKey(["bar_anomaly_scores", asset_class])


def _thresholds(db: Database) -> Thresholds | None:
    doc = qstore.latest_thresholds(db)
    if not doc:
        return None
    return Thresholds.from_dict({k: v for k, v in doc.items() if k != "saved_at"})


def _models(
    db: Database, symbol: str, history: pd.DataFrame, calendar: str, before: pd.Timestamp
) -> SymbolModels:
    """Isolation Forest of the batch's week (fitted on the bars before its Monday, so a bar is
    scored by the same model whatever the batch); Prophet loaded (predict only).

    Bars analysts marked false positive are left out of the forest's training window.
    """
    exclude = qstore.false_positive_times(db, symbol)
    fitted = fit_models(
        history,
        seed=SEED,
        exclude=exclude,
        calendar=calendar,
        with_prophet=False,
        before=before if (history.index < before).sum() >= 60 else None,
    )
    doc = qstore.latest_prophet(db, symbol)
    prophet = ProphetModels.from_json(doc["model_json"]) if doc else None
    return SymbolModels(iforest=fitted.iforest, prophet=prophet)


def _anomaly_rows(symbol: str, scores: pd.DataFrame, batch_id: str, thresholds) -> list[dict]:
    rows = []
    flagged = scores[scores["severity"].isin(["warning", "critical"])]
    for ts, row in flagged[~flagged.index.duplicated(keep="last")].iterrows():
        rules = list(row["rules"] or [])
        detector = "rules" if rules else "statistical"
        rows.append(
            {
                "symbol": symbol,
                "ts": ts,
                "detector": detector,
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


def build_scores_asset(asset_class: str) -> dg.AssetsDefinition:
    """Anomaly scores of one asset class, with the same partitions as its bars."""
    key = scores_key(asset_class)

    @dg.asset(
        key=key,
        deps=[bars_key(asset_class)],
        partitions_def=trading_day_partitions(asset_class),
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="quality",
        kinds={"scikitlearn", "mongodb"},
        tags={WORKLOAD_TAG: "ingestion"},
        owners=["team:data-engineering"],
        check_specs=[
            dg.AssetCheckSpec(
                "anomaly_rate_within_threshold",
                asset=key,
                description="Share of bars at warning or above stays under the calibrated rate.",
            ),
            dg.AssetCheckSpec(
                "no_critical_anomalies",
                asset=key,
                description="No bar of the batch is scored critical.",
            ),
        ],
        description=f"Isolation Forest and Prophet scores of the {asset_class} bars.",
    )
    def _scores(context: dg.AssetExecutionContext, mongo: MongoResource):
        """Isolation Forest and Prophet scores written beside the bars; anomalies recorded."""
        db = mongo.get_db()
        qstore.ensure_quality_indexes(db)
        window = context.partition_time_window
        lo = pd.Timestamp(window.start).tz_convert("UTC")
        hi = pd.Timestamp(window.end).tz_convert("UTC")
        repo = mongo.bars()
        thresholds = _thresholds(db)
        universe = load_universe()
        scored: dict[str, pd.DataFrame] = {}
        unscored: dict[str, int] = {}
        week = period_starts(pd.DatetimeIndex([lo]))[0]  # the batch's models are its week's
        for symbol in universe.by_asset_class(asset_class):
            frame = repo.read(symbol.name, lo - pd.Timedelta(days=HISTORY_DAYS), hi)
            batch = frame[frame.index >= lo]
            history = frame[frame.index < lo]
            if batch.empty:
                continue
            if len(frame) < MIN_HISTORY_BARS:
                # Too little history to fit a detector: the blocking checks of market_bars
                # already vetted these bars; they are scored once history accumulates.
                unscored[symbol.name] = len(frame)
                continue
            fit_on = history if len(history) >= 60 else frame
            scored[symbol.name] = score_bars(
                batch,
                history=history if len(history) else None,
                thresholds=thresholds,
                seed=SEED,
                models=_models(db, symbol.name, fit_on, symbol.calendar, week),
                calendar=symbol.calendar,
            )
        scored = mark_market_events(scored, lambda s: universe.get(s).asset_class)
        batch_id = f"{bars_key(asset_class).to_user_string()}:{context.partition_key_range.start}"
        if context.partition_key_range.end != context.partition_key_range.start:
            batch_id += f"..{context.partition_key_range.end}"
        now = dt.datetime.now(dt.UTC)
        counts = {"info": 0, "warning": 0, "critical": 0}
        anomalies, latest = [], []
        for symbol, scores in scored.items():
            qstore.write_bar_scores(db, symbol, scores, scored_at=now)
            for level, n in scores["severity"].value_counts().items():
                counts[str(level)] = counts.get(str(level), 0) + int(n)
            stored = qstore.upsert_anomalies(
                db, _anomaly_rows(symbol, scores, batch_id, thresholds)
            )
            anomalies.extend(stored)
        critical = [a for a in anomalies if a["severity"] == "critical"]
        enqueue_report = enqueue_alerts(db, critical)
        db["ingest_batches"].update_one(
            {"batch_id": batch_id},
            {"$set": {"anomalies_by_severity": counts, "scored_at": now}},
            upsert=True,
        )
        total = sum(counts.values())
        flagged = counts["warning"] + counts["critical"]
        rate = flagged / total if total else 0.0
        latest = sorted(anomalies, key=lambda a: a["ts"], reverse=True)[:20]
        yield dg.MaterializeResult(
            metadata={
                "bars_scored": dg.MetadataValue.int(total),
                "info": dg.MetadataValue.int(counts["info"]),
                "warning": dg.MetadataValue.int(counts["warning"]),
                "critical": dg.MetadataValue.int(counts["critical"]),
                "alerts_enqueued": dg.MetadataValue.int(enqueue_report.inserted),
                "thresholds_version": dg.MetadataValue.text(
                    thresholds.version if thresholds else "default"
                ),
                "batch_id": dg.MetadataValue.text(batch_id),
                "symbols_without_history": dg.MetadataValue.json(unscored),
                "latest_anomalies": _anomaly_table(latest),
            }
        )
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name="anomaly_rate_within_threshold",
            passed=rate <= MAX_ANOMALY_RATE,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "anomaly_rate": dg.MetadataValue.float(round(rate, 6)),
                "threshold_rate": dg.MetadataValue.float(MAX_ANOMALY_RATE),
                "flagged_bars": dg.MetadataValue.int(flagged),
            },
        )
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name="no_critical_anomalies",
            passed=counts["critical"] == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "critical_bars": dg.MetadataValue.int(counts["critical"]),
                "threshold_critical": dg.MetadataValue.int(0),
                "critical": _anomaly_table(critical[:50]),
            },
        )

    return _scores


def _anomaly_table(rows: list[dict]) -> dg.MetadataValue:
    columns = ["symbol", "ts", "detector", "rule", "severity", "score", "status"]
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    c: (round(float(r.get(c) or 0.0), 4) if c == "score" else str(r.get(c, "")))
                    for c in columns
                }
            )
            for r in rows
        ],
        schema=dg.TableSchema(
            columns=[dg.TableColumn(c, "float" if c == "score" else "string") for c in columns]
        ),
    )


class QualityModelsConfig(dg.Config):
    """Training window of the weekly refits."""

    history_days: int = 730
    calibration_bars: int = 120


@dg.asset(
    deps=[bars_key(c) for c in ("equity", "fx", "crypto")],
    group_name="quality",
    kinds={"prophet", "mongodb"},
    owners=["team:data-engineering"],
)
def prophet_models(
    context: dg.AssetExecutionContext, config: QualityModelsConfig, mongo: MongoResource
) -> dg.MaterializeResult:
    """Weekly Prophet fits per symbol (log price and log volume), stored as JSON in MongoDB."""
    db = mongo.get_db()
    qstore.ensure_quality_indexes(db)
    end = pd.Timestamp.now(tz="UTC")
    version = end.strftime("%G-W%V")
    fitted, skipped = [], {}
    for symbol in load_universe():
        history = mongo.bars().read(symbol.name, end - pd.Timedelta(days=config.history_days))
        try:
            models = fit_prophet(
                history,
                seed=SEED,
                exclude=qstore.false_positive_times(db, symbol.name),
                calendar=symbol.calendar,
            )
        except ValueError as exc:
            skipped[symbol.name] = str(exc)
            continue
        qstore.save_prophet(
            db,
            symbol.name,
            version,
            models.to_json(),
            fitted_through=pd.Timestamp(models.fitted_through).to_pydatetime(),
            n_train=int(models.n_train),
        )
        fitted.append(symbol.name)
    return dg.MaterializeResult(
        metadata={
            "version": dg.MetadataValue.text(version),
            "symbols_fitted": dg.MetadataValue.int(len(fitted)),
            "skipped": dg.MetadataValue.json(skipped),
        }
    )


@dg.asset(
    deps=[prophet_models],
    group_name="quality",
    kinds={"scikitlearn", "mongodb"},
    owners=["team:data-engineering"],
)
def anomaly_thresholds(
    context: dg.AssetExecutionContext, config: QualityModelsConfig, mongo: MongoResource
) -> dg.MaterializeResult:
    """Thresholds calibrated weekly on clean history to meet the target alert rates.

    Both detectors are replayed out of sample with the analysts' verdicts from MongoDB (see
    ``services.calibration``): false positives leave training, confirmed anomalies the sample.
    """
    end = pd.Timestamp.now(tz="UTC")
    start = end - pd.Timedelta(days=config.history_days)
    histories = {s.name: (mongo.bars().read(s.name, start), s.calendar) for s in load_universe()}
    try:
        report = recalibrate(
            mongo.get_db(),
            histories,
            calibration_bars=config.calibration_bars,
            as_of=end,
            seed=SEED,
        )
    except ValueError as exc:
        raise dg.Failure(description=f"cannot calibrate thresholds: {exc}") from exc
    t = report.thresholds
    version = qstore.save_thresholds(mongo.get_db(), t, calibrated_on_bars=int(t.n_bars))
    return dg.MaterializeResult(
        metadata={
            "version": dg.MetadataValue.text(version),
            "clean_bars": dg.MetadataValue.int(int(t.n_bars)),
            "thresholds": dg.MetadataValue.json(t.to_dict()),
            "false_positives_excluded": dg.MetadataValue.json(report.excluded),
            "confirmed_left_out": dg.MetadataValue.json(report.confirmed),
            "skipped": dg.MetadataValue.json(report.skipped),
        }
    )


@dg.asset(
    deps=[scores_key(c) for c in ("equity", "fx", "crypto")],
    group_name="quality",
    kinds={"mongodb"},
    owners=["team:data-engineering"],
)
def anomaly_dashboard(
    context: dg.AssetExecutionContext, mongo: MongoResource
) -> dg.MaterializeResult:
    """Anomaly counts, resolution times and false-positive rate, for the dashboard and KPIs."""
    db = mongo.get_db()
    by_severity = {
        d["_id"]: d["n"]
        for d in db.anomalies.aggregate([{"$group": {"_id": "$severity", "n": {"$sum": 1}}}])
    }
    by_symbol = {
        d["_id"]: d["n"]
        for d in db.anomalies.aggregate([{"$group": {"_id": "$symbol", "n": {"$sum": 1}}}])
    }
    by_status = {
        d["_id"]: d["n"]
        for d in db.anomalies.aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}])
    }
    batches = list(
        db.ingest_batches.find(
            {"anomalies_by_severity": {"$exists": True}}, {"anomalies_by_severity": 1}
        )
    )
    per_batch = [
        (
            b["anomalies_by_severity"].get("warning", 0)
            + b["anomalies_by_severity"].get("critical", 0)
        )
        for b in batches
    ]
    mean_per_batch = sum(per_batch) / len(per_batch) if per_batch else 0.0
    ttr = time_to_resolution(db)
    fpr = false_positive_rate(db)
    period = dt.datetime.now(dt.UTC).date().isoformat()
    kpis = {
        "quality.anomalies_per_batch": mean_per_batch,
        "quality.time_to_resolution_s": ttr.mean_s,
        "quality.false_positive_rate": fpr.rate,
        "quality.open_anomalies": float(by_status.get("open", 0)),
        "quality.critical_anomalies": float(by_severity.get("critical", 0)),
    }
    for name, value in kpis.items():
        upsert_kpi(
            db,
            name,
            period,
            value,
            details={"by_severity": by_severity},
            source="anomaly_dashboard",
        )
    latest = list(db.anomalies.find({}, {"_id": 0}).sort("ts", -1).limit(20))
    return dg.MaterializeResult(
        metadata={
            "anomalies_info": dg.MetadataValue.int(int(by_severity.get("info", 0))),
            "anomalies_warning": dg.MetadataValue.int(int(by_severity.get("warning", 0))),
            "anomalies_critical": dg.MetadataValue.int(int(by_severity.get("critical", 0))),
            "open": dg.MetadataValue.int(int(by_status.get("open", 0))),
            "acknowledged": dg.MetadataValue.int(int(by_status.get("acknowledged", 0))),
            "resolved": dg.MetadataValue.int(int(by_status.get("resolved", 0))),
            "false_positive": dg.MetadataValue.int(int(by_status.get("false_positive", 0))),
            "anomalies_per_batch": dg.MetadataValue.float(round(mean_per_batch, 3)),
            "time_to_resolution_mean_s": dg.MetadataValue.float(float(ttr.mean_s or 0.0)),
            "false_positive_rate": dg.MetadataValue.float(float(fpr.rate or 0.0)),
            "by_symbol": dg.MetadataValue.json(by_symbol),
            "latest_anomalies": _anomaly_table(latest),
        }
    )


quality_models_job = dg.define_asset_job(
    name="quality_models_job",
    selection=dg.AssetSelection.assets(prophet_models, anomaly_thresholds),
    tags={WORKLOAD_TAG: "quality_training", "dagster/priority": "0"},
    description="Refit the Prophet models and recalibrate the anomaly thresholds.",
)

anomaly_dashboard_job = dg.define_asset_job(
    name="anomaly_dashboard_job",
    selection=dg.AssetSelection.assets(anomaly_dashboard),
    description="Recompute the anomaly dashboard and its KPIs.",
)


@dg.schedule(
    name="weekly_quality_models_schedule",
    cron_schedule="0 8 * * 0",
    execution_timezone="America/New_York",
    job=quality_models_job,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Sunday 08:00 New York: refit Prophet, recalibrate thresholds.",
)
def weekly_quality_models_schedule(context: dg.ScheduleEvaluationContext):
    """Weekly refit and recalibration, outside market hours."""
    return dg.RunRequest()


@dg.sensor(
    name="alert_delivery_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Deliver due alerts from the outbox to the webhook and Slack, with retries.",
)
def alert_delivery_sensor(context: dg.SensorEvaluationContext, mongo: MongoResource):
    """Delivers due alerts; a crash between record and send is recovered on the next tick."""
    summary = deliver_due(mongo.get_db(), transports=transports_from_settings(load_settings()))
    return dg.SkipReason(
        f"claimed {summary.claimed}, sent {summary.sent}, retried {summary.retried}, "
        f"failed {summary.failed}"
    )


@dg.op(description="Deliver the due alerts of the outbox once (what the sensor does every tick).")
def deliver_alerts(context: dg.OpExecutionContext, mongo: MongoResource) -> dg.Output[dict]:
    """Delivers due alerts to the configured webhook and Slack targets."""
    summary = deliver_due(mongo.get_db(), transports=transports_from_settings(load_settings()))
    fields = {f: int(getattr(summary, f)) for f in ("claimed", "sent", "retried", "failed")}
    context.log.info(f"alert delivery: {fields}")
    return dg.Output(fields, metadata={k: dg.MetadataValue.int(v) for k, v in fields.items()})


@dg.job(description="Deliver due alerts now, outside the sensor's cadence.")
def alert_delivery_job() -> None:
    """One delivery pass over the outbox."""
    deliver_alerts()


def build_defs() -> dg.Definitions:
    """Definitions of the quality area."""
    classes = asset_classes_in_universe()
    return dg.Definitions(
        assets=[
            *(build_scores_asset(c) for c in classes),
            prophet_models,
            anomaly_thresholds,
            anomaly_dashboard,
        ],
        jobs=[quality_models_job, anomaly_dashboard_job, alert_delivery_job],
        schedules=[weekly_quality_models_schedule],
        sensors=[alert_delivery_sensor],
    )


__all__ = ["MarketDataSource", "build_defs"]
