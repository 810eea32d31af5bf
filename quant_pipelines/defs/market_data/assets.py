"""``market_bars/<asset_class>``: daily OHLCV bars upserted into MongoDB, checked on write."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import pandas as pd

from quant_pipelines.defs.market_data.checks import check_result, check_specs
from quant_pipelines.defs.partitions import trading_day_partitions
from quant_pipelines.defs.resources import MarketDataSource, MongoResource, UniverseResource
from quant_pipelines.marketdata import BarSchemaError, FileSourceError
from quant_pipelines.marketdata.universe import UniverseError
from quant_pipelines.services.market_data import ASSET_CLASSES, IngestReport, ingest_partition

INGEST_RETRY = dg.RetryPolicy(max_retries=2, delay=1, backoff=dg.Backoff.EXPONENTIAL)
WORKLOAD_TAG = "quant_pipelines/workload"
#: Bars are fresh within this many hours of their calendar's session close.
FRESH_WITHIN_HOURS = 6
#: Session close of each class: (hour, timezone, cron days of the close).
SESSION_CLOSE = {
    "equity": (16, "America/New_York", "1-5"),  # XNYS closes 16:00 New York, Mon-Fri
    "fx": (0, "UTC", "2-6"),  # the UTC day of Mon..Fri ends at 00:00 UTC Tue..Sat
    "crypto": (0, "UTC", "*"),  # 24/7: each UTC day ends at midnight
}
_BAD_INPUT = (FileSourceError, BarSchemaError, UniverseError)


def market_bars_key(asset_class: str) -> dg.AssetKey:
    """Asset key of the bars of one asset class."""
    return dg.AssetKey(["market_bars", asset_class])


def freshness_policy(asset_class: str) -> dg.FreshnessPolicy:
    """Fresh when materialized within ``FRESH_WITHIN_HOURS`` after the class's session close."""
    hour, timezone, days = SESSION_CLOSE[asset_class]
    deadline = f"0 {(hour + FRESH_WITHIN_HOURS) % 24} * * {days}"
    return dg.FreshnessPolicy.cron(
        deadline_cron=deadline,
        lower_bound_delta=dt.timedelta(hours=FRESH_WITHIN_HOURS),
        timezone=timezone,
    )


def _preview(report: IngestReport, rows: int = 10) -> dg.TableMetadataValue:
    """The last ``rows`` bars written, for the asset's page in the UI."""
    columns = ("open", "high", "low", "close", "volume")
    frames = [p.bars.tail(rows).assign(symbol=p.symbol) for p in report.prepared if len(p.bars)]
    frame = pd.concat(frames).sort_index().tail(rows) if frames else pd.DataFrame()
    schema = dg.TableSchema(
        columns=[dg.TableColumn("ts", "string"), dg.TableColumn("symbol", "string")]
        + [dg.TableColumn(c, "float") for c in columns]
    )
    records = [
        dg.TableRecord(
            {"ts": ts.isoformat(), "symbol": row["symbol"]}
            | {c: round(float(row[c]), 6) for c in columns}
        )
        for ts, row in frame.iterrows()
    ]
    return dg.MetadataValue.table(records=records, schema=schema)


def _materialization(report: IngestReport) -> dg.MaterializeResult:
    first, last = report.span
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(report.rows),
            "inserted": dg.MetadataValue.int(report.inserted),
            "updated": dg.MetadataValue.int(report.updated),
            "symbols": dg.MetadataValue.int(len(report.symbols)),
            "first_ts": dg.MetadataValue.text(first.isoformat() if first else "-"),
            "last_ts": dg.MetadataValue.text(last.isoformat() if last else "-"),
            "source": dg.MetadataValue.text(report.source),
            "batch_id": dg.MetadataValue.text(report.batch_id),
            "alerts_enqueued": dg.MetadataValue.int(report.alerts_enqueued),
            "write_seconds": dg.MetadataValue.float(report.timings_s["write"]),
            "preview": _preview(report),
        }
    )


def build_market_bars_asset(asset_class: str) -> dg.AssetsDefinition:
    """The ingestion asset of one asset class, partitioned by that class's trading days."""
    key = market_bars_key(asset_class)

    @dg.asset(
        key=key,
        partitions_def=trading_day_partitions(asset_class),
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=INGEST_RETRY,
        freshness_policy=freshness_policy(asset_class),
        pool="mongo_bulk",
        group_name="market_data",
        kinds={"mongodb", "pandas"},
        tags={WORKLOAD_TAG: "ingestion"},
        owners=["team:data-engineering"],
        check_specs=check_specs(key),
        description=f"Daily OHLCV bars of the {asset_class} universe, upserted into `bars`.",
    )
    def _market_bars(
        context,  # AssetExecutionContext; unannotated: PEP 563 strings fail Dagster's check
        mongo: MongoResource,
        market_data: MarketDataSource,
        universe: UniverseResource,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """Bars of one asset class for the selected trading days, validated and upserted."""
        symbols, name = universe.load(), key.to_user_string()
        source = market_data.build(symbols)
        try:
            report = ingest_partition(
                mongo.repos(), source, symbols, asset_class, list(context.partition_keys),
                asset=name, source_label=market_data.label, run_id=context.run.run_id,
            )  # fmt: skip
        except _BAD_INPUT as exc:  # not transient: fail at once, no retries, nothing written
            raise dg.Failure(f"bad input for {name}: {exc}", allow_retries=False) from exc
        context.log.info(f"{report.batch_id}: {report.rows} bars, {report.inserted} new")
        yield _materialization(report)
        yield from (check_result(key, outcome) for outcome in report.checks)

    return _market_bars


equity_market_bars = build_market_bars_asset("equity")
fx_market_bars = build_market_bars_asset("fx")
crypto_market_bars = build_market_bars_asset("crypto")

__all__ = [
    "ASSET_CLASSES",
    "WORKLOAD_TAG",
    "build_market_bars_asset",
    "crypto_market_bars",
    "equity_market_bars",
    "freshness_policy",
    "fx_market_bars",
    "market_bars_key",
]
