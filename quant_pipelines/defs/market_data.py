"""Market-data ingestion: ``market_bars/<asset_class>`` assets, their checks, jobs and schedule."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd

from quant_pipelines.alerts import enqueue_alerts
from quant_pipelines.defs import _ingest_checks as checks
from quant_pipelines.defs.partitions import trading_day_partitions
from quant_pipelines.defs.resources import MarketDataSource, MongoResource
from quant_pipelines.marketdata import (
    BarSchemaError,
    FileSourceError,
    get_calendar,
    load_universe,
    sessions,
)
from quant_pipelines.marketdata.calendars import session_bounds
from quant_pipelines.marketdata.ingest import OHLC_RULES, PreparedBars, prepare_bars
from quant_pipelines.marketdata.universe import UniverseError
from quant_pipelines.storage.quality import upsert_anomalies

#: Rules whose failure is a blocking check failure, and so an alert.
GATE_RULES = OHLC_RULES | {"duplicate_ts"}
INGEST_RETRY = dg.RetryPolicy(max_retries=2, delay=1, backoff=dg.Backoff.EXPONENTIAL)
ASSET_CLASSES = ("equity", "fx", "crypto")
WORKLOAD_TAG = "quant_pipelines/workload"


def market_bars_key(asset_class: str) -> dg.AssetKey:
    """Asset key of the bars of one asset class."""
    return dg.AssetKey(["market_bars", asset_class])


def _closed_sessions(asset_class: str, keys: list[str], now: pd.Timestamp) -> list[str]:
    labels = pd.DatetimeIndex(pd.to_datetime(keys))
    labels = labels[labels.isin(sessions(asset_class, labels.min(), labels.max()))]
    _, closes = session_bounds(asset_class, labels)
    closes = closes.tz_localize("UTC") if closes.tz is None else closes
    return [label.strftime("%Y-%m-%d") for label, c in zip(labels, closes, strict=True) if c <= now]


def fetch_partition(
    source: MarketDataSource, asset_class: str, keys: list[str], *, now: pd.Timestamp
) -> tuple[list[PreparedBars], list[str]]:
    """Reads and validates every symbol of ``asset_class`` for the given session keys.

    Everything is read before anything is written, so a malformed file fails the whole
    partition with nothing stored.

    Returns:
        The prepared bars per symbol, and the session keys that were still open (skipped).
    """
    closed = _closed_sessions(asset_class, keys, now) if keys else []
    skipped = sorted(set(keys) - set(closed))
    if not closed:
        return [], skipped
    universe = source.universe
    domain_source = source.build()
    opens, closes = session_bounds(asset_class, pd.DatetimeIndex(pd.to_datetime(closed)))
    lo = opens.min().tz_localize("UTC") if opens.tz is None else opens.min()
    hi = closes.max().tz_localize("UTC") if closes.tz is None else closes.max()
    prepared = []
    for symbol in universe.by_asset_class(asset_class):
        raw = domain_source.bars(symbol.name, closed[0], closed[-1])
        raw = raw[(raw.index >= lo) & (raw.index < hi)]
        prepared.append(
            prepare_bars(raw, symbol=symbol.name, calendar=symbol.calendar, sessions=closed)
        )
    return prepared, skipped


def _preview(prepared: list[PreparedBars], rows: int = 10) -> dg.TableMetadataValue:
    frames = [p.bars.assign(symbol=p.symbol) for p in prepared if len(p.bars)]
    frame = pd.concat(frames).sort_index().tail(rows) if frames else pd.DataFrame()
    schema = dg.TableSchema(
        columns=[dg.TableColumn("ts", "string"), dg.TableColumn("symbol", "string")]
        + [dg.TableColumn(c, "float") for c in ("open", "high", "low", "close", "volume")]
    )
    records = [
        dg.TableRecord(
            {
                "ts": ts.isoformat(),
                "symbol": row["symbol"],
                **{c: round(float(row[c]), 6) for c in ("open", "high", "low", "close", "volume")},
            }
        )
        for ts, row in frame.iterrows()
    ]
    return dg.MetadataValue.table(records=records, schema=schema)


def _record_gate_failures(mongo: MongoResource, prepared: list[PreparedBars], batch_id: str) -> int:
    """Records rows failing a blocking check as critical anomalies and enqueues their alerts.

    One anomaly (detector ``validation``) and one alert per (symbol, ts, rule), in the same
    step that stores the bars; upserts make a re-run add nothing.
    """
    rows = []
    for p in prepared:
        for issue in p.issues:
            if issue.rule in GATE_RULES and issue.ts is not None:
                rows.append(
                    {
                        "symbol": p.symbol,
                        "ts": issue.ts,
                        "detector": f"validation:{issue.rule}",
                        "rule": issue.rule,
                        "severity": "critical",
                        "score": 1.0,
                        "threshold": 0.0,
                        "message": issue.message,
                        "batch_id": batch_id,
                    }
                )
    if not rows:
        return 0
    db = mongo.get_db()
    stored = upsert_anomalies(db, rows)
    return enqueue_alerts(db, stored).inserted


def build_market_bars_asset(asset_class: str) -> dg.AssetsDefinition:
    """The ingestion asset of one asset class, partitioned by that class's trading days."""
    key = market_bars_key(asset_class)

    @dg.asset(
        key=key,
        partitions_def=trading_day_partitions(asset_class),
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=INGEST_RETRY,
        group_name="market_data",
        kinds={"mongodb", "pandas"},
        tags={WORKLOAD_TAG: "ingestion"},
        owners=["team:data-engineering"],
        check_specs=checks.check_specs(key),
        description=f"Daily OHLCV bars of the {asset_class} universe, upserted into `bars`.",
    )
    def _market_bars(
        context,  # AssetExecutionContext; unannotated: PEP 563 strings fail Dagster's check
        mongo: MongoResource,
        market_data: MarketDataSource,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """Bars of one asset class for the selected trading days, validated and upserted."""
        keys = list(context.partition_keys)
        now = pd.Timestamp.now(tz="UTC")
        started = time.perf_counter()
        try:
            prepared, skipped = fetch_partition(market_data, asset_class, keys, now=now)
        except (FileSourceError, BarSchemaError, UniverseError) as exc:
            # Bad input is not transient: fail at once, without retries, and write nothing.
            raise dg.Failure(
                description=f"bad input for {key.to_user_string()}: {exc}",
                metadata={"partitions": dg.MetadataValue.text(f"{keys[0]}..{keys[-1]}")},
                allow_retries=False,
            ) from exc
        fetched = time.perf_counter()
        repo = mongo.bars()  # connects (and fails fast, naming the host) before any write
        batch_id = f"{key.to_user_string()}:{keys[0]}" + (f"..{keys[-1]}" if len(keys) > 1 else "")
        inserted = updated = 0
        for p in prepared:
            report = repo.upsert(
                p.bars,
                symbol=p.symbol,
                source=market_data.label,
                batch_id=batch_id,
                invalid_ts=p.invalid_ts,
                issues_by_ts=p.issues_by_ts,
            )
            inserted += report.inserted
            updated += report.updated
        written = time.perf_counter()
        rows = sum(len(p.bars) for p in prepared)
        stamps = [
            ts for p in prepared for ts in (p.bars.index.min(), p.bars.index.max()) if len(p.bars)
        ]
        summary = {
            "asset": key.to_user_string(),
            "asset_class": asset_class,
            "partition": {"first": keys[0], "last": keys[-1], "count": len(keys)},
            "skipped_open_sessions": skipped,
            "symbols": [p.symbol for p in prepared],
            "source": market_data.label,
            "rows": {
                "received": rows + sum(len(p.duplicates) for p in prepared),
                "stored": rows,
                "inserted": inserted,
                "updated": updated,
                "invalid": sum(len(p.invalid_ts) for p in prepared),
                "duplicates_dropped": sum(len(p.duplicates) for p in prepared),
                "missing": sum(len(p.missing) for p in prepared),
            },
            "issues_by_rule": checks.rule_totals(prepared),
            "timings_s": {
                "fetch_validate": round(fetched - started, 4),
                "write": round(written - fetched, 4),
            },
        }
        mongo.ingest_batches().record(batch_id, summary, run_id=context.run.run_id)
        alerted = _record_gate_failures(mongo, prepared, batch_id)
        if alerted:
            context.log.warning(f"{alerted} alert(s) enqueued for bars failing a blocking check")
        context.log.info(
            f"{key.to_user_string()} {keys[0]}..{keys[-1]}: {rows} bars "
            f"({inserted} new, {updated} updated) into {mongo.database}.bars"
        )
        yield dg.MaterializeResult(
            metadata={
                "row_count": dg.MetadataValue.int(rows),
                "inserted": dg.MetadataValue.int(inserted),
                "updated": dg.MetadataValue.int(updated),
                "symbols": dg.MetadataValue.int(len(prepared)),
                "first_ts": dg.MetadataValue.text(min(stamps).isoformat() if stamps else "-"),
                "last_ts": dg.MetadataValue.text(max(stamps).isoformat() if stamps else "-"),
                "source": dg.MetadataValue.text(market_data.label),
                "batch_id": dg.MetadataValue.text(batch_id),
                "write_seconds": dg.MetadataValue.float(round(written - fetched, 4)),
                "preview": _preview(prepared),
            }
        )
        yield from checks.evaluate(key, prepared, repo, now=now)

    return _market_bars


def build_ingest_job(asset_class: str) -> dg.UnresolvedAssetJobDefinition:
    """The daily flow of one asset class: ingest and check its bars, then score them.

    The sentinel's ``bar_anomaly_scores/<class>`` (same partitions) runs only when the blocking
    checks of the bars pass.
    """
    return dg.define_asset_job(
        name=f"ingest_{asset_class}_bars_job",
        selection=dg.AssetSelection.assets(
            market_bars_key(asset_class), dg.AssetKey(["bar_anomaly_scores", asset_class])
        ),
        tags={WORKLOAD_TAG: "ingestion", "dagster/priority": "10"},
        description=f"Ingest, check and score the {asset_class} bars of the selected trading days.",
    )


def _today_partition(asset_class: str, now: dt.datetime) -> str | None:
    """The session labelled with today's New York date, if it has closed by ``now``.

    At 20:30 New York the XNYS session of the day has closed, and so has the UTC day of the
    same date (it ended at 19:00 or 20:00 New York), which is the FX and crypto session.
    """
    key = now.astimezone(ZoneInfo("America/New_York")).date().isoformat()
    if not len(sessions(asset_class, key, key)):
        return None
    closed = _closed_sessions(asset_class, [key], pd.Timestamp(now).tz_convert("UTC"))
    return key if closed else None


def build_daily_ingestion_schedule(
    asset_class: str, job: dg.UnresolvedAssetJobDefinition
) -> dg.ScheduleDefinition:
    """After the New York close, ingest the day's session of ``asset_class`` if it traded."""

    @dg.schedule(
        name=f"daily_{asset_class}_ingestion_schedule",
        cron_schedule="30 20 * * *",
        execution_timezone="America/New_York",
        job=job,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=(
            f"Ingest the day's {asset_class} bars at 20:30 New York, after the NYSE close; "
            "days without a session are skipped."
        ),
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        now = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
        key = _today_partition(asset_class, now)
        if key is None:
            return dg.SkipReason(f"no {asset_class} session closed on {now.date()}")
        return dg.RunRequest(run_key=f"{asset_class}:{key}", partition_key=key)

    return _schedule


def asset_classes_in_universe() -> tuple[str, ...]:
    """Asset classes that have at least one symbol in the configured universe."""
    present = set(load_universe().asset_classes)
    return tuple(c for c in ASSET_CLASSES if c in present)


def build_defs() -> dg.Definitions:
    """Definitions of the market-data area."""
    classes = asset_classes_in_universe()
    jobs = {c: build_ingest_job(c) for c in classes}
    return dg.Definitions(
        assets=[build_market_bars_asset(c) for c in classes],
        jobs=list(jobs.values()),
        schedules=[build_daily_ingestion_schedule(c, j) for c, j in jobs.items()],
    )


__all__ = ["build_defs", "get_calendar", "market_bars_key"]
