"""Market-data ingestion as a use case: read, validate and upsert one asset class's sessions.

No Dagster here: :func:`ingest_partition` takes repositories and domain inputs and returns an
:class:`IngestReport`, which the Dagster asset turns into metadata and check results.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import pandas as pd

from quant_pipelines.alerts import enqueue_alerts
from quant_pipelines.marketdata import ASSET_CLASSES, Universe, sessions
from quant_pipelines.marketdata.calendars import session_bounds
from quant_pipelines.marketdata.ingest import GATE_RULES, PreparedBars, prepare_bars
from quant_pipelines.services._ingest_checks import CheckOutcome, evaluate_checks
from quant_pipelines.storage.quality import upsert_anomalies
from quant_pipelines.storage.repositories import Repositories

__all__ = [
    "ASSET_CLASSES",
    "GATE_RULES",
    "IngestReport",
    "asset_classes_in_universe",
    "fetch_partition",
    "ingest_partition",
    "record_gate_failures",
    "today_partition",
]


class BarSource(Protocol):
    """A domain bar source (synthetic or files): raw bars of one symbol over some days."""

    def bars(self, symbol: str, start: str, end: str) -> pd.DataFrame:
        """Raw OHLCV bars of ``symbol`` from ``start`` to ``end`` (session labels)."""
        ...


@dataclass(frozen=True)
class IngestReport:
    """What one ingestion of an asset class's sessions did.

    Attributes:
        batch_id: Natural key of the ``ingest_batches`` document.
        keys: The requested session keys; ``skipped`` those still open (not ingested).
        prepared: The validated bars per symbol (what was written).
        inserted: New bar documents; ``updated`` existing ones rewritten.
        alerts_enqueued: Alerts enqueued for rows failing a blocking rule.
        checks: Outcome of every ``market_bars`` check.
        timings_s: Seconds spent fetching and validating, and writing.
    """

    batch_id: str
    asset_class: str
    keys: list[str]
    skipped: list[str]
    source: str
    prepared: list[PreparedBars]
    inserted: int = 0
    updated: int = 0
    alerts_enqueued: int = 0
    checks: list[CheckOutcome] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Bars stored (after dropping duplicates)."""
        return sum(len(p.bars) for p in self.prepared)

    @property
    def symbols(self) -> list[str]:
        """Symbols ingested."""
        return [p.symbol for p in self.prepared]

    @property
    def span(self) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        """First and last stored bar time (None when nothing was stored)."""
        stamps = [t for p in self.prepared if len(p.bars) for t in (p.bars.index[[0, -1]])]
        return (min(stamps), max(stamps)) if stamps else (None, None)


def asset_classes_in_universe(universe: Universe) -> tuple[str, ...]:
    """Asset classes that have at least one symbol in ``universe``."""
    present = set(universe.asset_classes)
    return tuple(c for c in ASSET_CLASSES if c in present)


def closed_sessions(asset_class: str, keys: list[str], now: pd.Timestamp) -> list[str]:
    """The session keys among ``keys`` whose session has closed by ``now``."""
    labels = pd.DatetimeIndex(pd.to_datetime(keys))
    labels = labels[labels.isin(sessions(asset_class, labels.min(), labels.max()))]
    _, closes = session_bounds(asset_class, labels)
    closes = closes.tz_localize("UTC") if closes.tz is None else closes
    return [label.strftime("%Y-%m-%d") for label, c in zip(labels, closes, strict=True) if c <= now]


def today_partition(asset_class: str, now: dt.datetime) -> str | None:
    """The session labelled with today's New York date, if it has closed by ``now``.

    At 20:30 New York the XNYS session of the day has closed, and so has the UTC day of the
    same date (it ended at 19:00 or 20:00 New York), which is the FX and crypto session.
    """
    key = now.astimezone(ZoneInfo("America/New_York")).date().isoformat()
    if not len(sessions(asset_class, key, key)):
        return None
    closed = closed_sessions(asset_class, [key], pd.Timestamp(now).tz_convert("UTC"))
    return key if closed else None


def fetch_partition(
    source: BarSource, universe: Universe, asset_class: str, keys: list[str], *, now: pd.Timestamp
) -> tuple[list[PreparedBars], list[str]]:
    """Reads and validates every symbol of ``asset_class`` for the given session keys.

    Everything is read before anything is written, so a malformed file fails the whole
    partition with nothing stored.

    Returns:
        The prepared bars per symbol, and the session keys that were still open (skipped).
    """
    closed = closed_sessions(asset_class, keys, now) if keys else []
    skipped = sorted(set(keys) - set(closed))
    if not closed:
        return [], skipped
    opens, closes = session_bounds(asset_class, pd.DatetimeIndex(pd.to_datetime(closed)))
    lo = opens.min().tz_localize("UTC") if opens.tz is None else opens.min()
    hi = closes.max().tz_localize("UTC") if closes.tz is None else closes.max()
    prepared = []
    for symbol in universe.by_asset_class(asset_class):
        raw = source.bars(symbol.name, closed[0], closed[-1])
        raw = raw[(raw.index >= lo) & (raw.index < hi)]
        prepared.append(
            prepare_bars(raw, symbol=symbol.name, calendar=symbol.calendar, sessions=closed)
        )
    return prepared, skipped


def record_gate_failures(repos: Repositories, prepared: list[PreparedBars], batch_id: str) -> int:
    """Records rows failing a blocking rule as critical anomalies and enqueues their alerts.

    One anomaly (detector ``validation:<rule>``) and one alert per (symbol, ts, rule); upserts
    make a re-run add nothing.

    Returns:
        The number of alerts enqueued.
    """
    rows = [
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
        for p in prepared
        for issue in p.issues
        if issue.rule in GATE_RULES and issue.ts is not None
    ]
    if not rows:
        return 0
    return enqueue_alerts(repos.db, upsert_anomalies(repos.db, rows)).inserted


def ingest_partition(
    repos: Repositories,
    source: BarSource,
    universe: Universe,
    asset_class: str,
    keys: list[str],
    *,
    asset: str,
    source_label: str,
    run_id: str | None = None,
    now: pd.Timestamp | None = None,
) -> IngestReport:
    """Ingests the closed sessions ``keys`` of ``asset_class``: read, validate, upsert, check.

    Args:
        repos: The project's repositories.
        source: Where bars come from.
        universe: The symbols to ingest (those of ``asset_class``).
        asset_class: ``equity``, ``fx`` or ``crypto``.
        keys: Session labels ``YYYY-MM-DD`` (open sessions are skipped).
        asset: Name of the asset, the prefix of the batch id (``market_bars/equity``).
        source_label: Recorded in each bar's ``source`` field.
        run_id: Run that wrote the batch (accumulated in the batch document).
        now: The clock (default: now).

    Returns:
        The report, with the checks' outcomes.

    Raises:
        FileSourceError, BarSchemaError, UniverseError: Bad input; nothing was written.
    """
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    started = time.perf_counter()
    prepared, skipped = fetch_partition(source, universe, asset_class, keys, now=now)
    fetched = time.perf_counter()
    batch_id = f"{asset}:{keys[0]}" + (f"..{keys[-1]}" if len(keys) > 1 else "")
    inserted = updated = 0
    for p in prepared:
        written = repos.bars.upsert(
            p.bars,
            symbol=p.symbol,
            source=source_label,
            batch_id=batch_id,
            invalid_ts=p.invalid_ts,
            issues_by_ts=p.issues_by_ts,
        )
        inserted += written.inserted
        updated += written.updated
    timings = {"fetch_validate": round(fetched - started, 4)}
    timings["write"] = round(time.perf_counter() - fetched, 4)
    report = IngestReport(
        batch_id, asset_class, keys, skipped, source_label, prepared, inserted, updated
    )
    repos.batches.record(batch_id, _batch_document(report, asset, timings), run_id=run_id)
    alerted = record_gate_failures(repos, prepared, batch_id)
    checks = evaluate_checks(asset_class, prepared, repos.bars, now=now)
    return IngestReport(
        **{**report.__dict__, "alerts_enqueued": alerted, "checks": checks, "timings_s": timings}
    )


def _batch_document(report: IngestReport, asset: str, timings: dict[str, float]) -> dict[str, Any]:
    prepared = report.prepared
    rules: Counter[str] = Counter()
    for p in prepared:
        rules.update(p.rule_counts())
    return {
        "asset": asset,
        "asset_class": report.asset_class,
        "partition": {"first": report.keys[0], "last": report.keys[-1], "count": len(report.keys)},
        "skipped_open_sessions": report.skipped,
        "symbols": report.symbols,
        "source": report.source,
        "rows": {
            "received": report.rows + sum(len(p.duplicates) for p in prepared),
            "stored": report.rows,
            "inserted": report.inserted,
            "updated": report.updated,
            "invalid": sum(len(p.invalid_ts) for p in prepared),
            "duplicates_dropped": sum(len(p.duplicates) for p in prepared),
            "missing": sum(len(p.missing) for p in prepared),
        },
        "issues_by_rule": dict(rules),
        "timings_s": timings,
    }
