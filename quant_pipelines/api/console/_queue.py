"""The triage queue: open and acknowledged anomalies, filtered, sorted by severity then age.

Unknown filter values never raise: the queue comes back empty with a note naming the filter
and the values it accepts, so a mistyped bookmark shows an explanation instead of a 500.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from pymongo import ASCENDING
from pymongo.database import Database

from quant_pipelines._utils.time import utc
from quant_pipelines.marketdata import Universe
from quant_pipelines.storage.anomaly_workflow import ACKNOWLEDGED, OPEN
from quant_pipelines.storage.collections import ANOMALIES

#: Severities, most severe first (the queue's first sort key).
SEVERITY_ORDER = ("critical", "warning", "info")
#: The statuses the queue shows: those still waiting for a verdict.
QUEUE_STATUSES = (OPEN, ACKNOWLEDGED)
#: Most rows shown at once.
MAX_ROWS = 200
#: Filter names, in the order the form shows them.
FILTERS = ("severity", "asset_class", "symbol", "kind", "detector", "date", "status")
_MAX_FILTER_CHARS = 64
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class QueueFilters:
    """The queue's filters, as given in the query string (empty means no filter)."""

    severity: str = ""
    asset_class: str = ""
    symbol: str = ""
    kind: str = ""
    detector: str = ""
    date: str = ""
    status: str = ""

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> QueueFilters:
        """Reads the filters from query parameters (trimmed, at most 64 characters each)."""
        return cls(**{f: str(params.get(f, "")).strip()[:_MAX_FILTER_CHARS] for f in FILTERS})

    def active(self) -> dict[str, str]:
        """The filters that are set."""
        return {f: getattr(self, f) for f in FILTERS if getattr(self, f)}

    def query_string(self) -> str:
        """The active filters as a query string (for links back to this view)."""
        return urlencode(self.active())


@dataclass(frozen=True)
class Queue:
    """One view of the queue.

    Attributes:
        rows: The anomalies shown, most severe first, then oldest first.
        counts: Matching anomalies by severity (all of them, not only the rows shown).
        notes: Why the queue is empty because of a filter (unknown values), if it is.
        options: Filter -> the values it accepts (for the form's drop-downs).
        filters: The filters applied.
        total: Matching anomalies (may exceed the rows shown).
        limit: Most rows shown.
    """

    rows: list[dict[str, Any]]
    counts: dict[str, int]
    notes: list[str]
    options: dict[str, list[str]]
    filters: QueueFilters
    total: int = 0
    limit: int = MAX_ROWS

    @property
    def truncated(self) -> bool:
        """More anomalies match than are shown."""
        return self.total > len(self.rows)


def _status_query(status: str) -> Any:
    if status == OPEN:
        return {"$in": [None, OPEN]}  # a document without status counts as open
    if status == ACKNOWLEDGED:
        return ACKNOWLEDGED
    return {"$in": [None, OPEN, ACKNOWLEDGED]}


def _options(db: Database, universe: Universe) -> dict[str, list[str]]:
    coll = db[ANOMALIES]
    symbols = {*universe.names, *(str(v) for v in coll.distinct("symbol") if v)}
    return {
        "severity": list(SEVERITY_ORDER),
        "asset_class": sorted(universe.asset_classes),
        "symbol": sorted(symbols),
        "kind": sorted(str(v) for v in coll.distinct("kind") if v),
        "detector": sorted(str(v) for v in coll.distinct("detector") if v),
        "status": list(QUEUE_STATUSES),
    }


def _listing(values: list[str]) -> str:
    return ", ".join(values) if values else "none recorded yet"


def _build_query(
    filters: QueueFilters, options: dict[str, list[str]], universe: Universe
) -> tuple[dict[str, Any], list[str]]:
    notes: list[str] = []
    query: dict[str, Any] = {"status": _status_query(filters.status)}
    for name, value in filters.active().items():
        if name == "date":
            continue
        if value not in options[name]:
            label = name.replace("_", " ")
            notes.append(f"unknown {label} {value!r}: expected one of {_listing(options[name])}")
    if filters.date:
        try:
            if not _DATE.match(filters.date):
                raise ValueError(filters.date)
            day = dt.datetime.strptime(filters.date, "%Y-%m-%d").replace(tzinfo=dt.UTC)
            query["ts"] = {"$gte": day, "$lt": day + dt.timedelta(days=1)}
        except ValueError:
            notes.append(f"date {filters.date!r} is not a date: expected YYYY-MM-DD (UTC)")
    if notes:
        return query, notes
    symbols: set[str] | None = None
    if filters.asset_class:
        symbols = {s.name for s in universe.by_asset_class(filters.asset_class)}
    if filters.symbol:
        symbols = {filters.symbol} if symbols is None else symbols & {filters.symbol}
    if symbols is not None:
        query["symbol"] = {"$in": sorted(symbols)}
    for name in ("severity", "kind", "detector"):
        if getattr(filters, name):
            query[name] = getattr(filters, name)
    return query, notes


def _asset_class(universe: Universe, symbol: str) -> str:
    return universe.get(symbol).asset_class if symbol in universe else ""


def load_queue(
    db: Database,
    universe: Universe,
    filters: QueueFilters,
    *,
    now: dt.datetime,
    limit: int = MAX_ROWS,
) -> Queue:
    """The queue for ``filters``.

    Args:
        db: The project database.
        universe: Maps symbols to asset classes (the ``asset_class`` filter).
        filters: The filters; unknown values give an empty queue with notes.
        now: The clock, for the rows' age.
        limit: Most rows returned.

    Returns:
        The queue: rows most severe first, oldest first within a severity.
    """
    options = _options(db, universe)
    query, notes = _build_query(filters, options, universe)
    counts = dict.fromkeys(SEVERITY_ORDER, 0)
    if notes:
        return Queue([], counts, notes, options, filters, 0, limit)
    coll = db[ANOMALIES]
    for doc in coll.aggregate(
        [{"$match": query}, {"$group": {"_id": "$severity", "n": {"$sum": 1}}}]
    ):
        counts[str(doc["_id"])] = counts.get(str(doc["_id"]), 0) + int(doc["n"])
    rows: list[dict[str, Any]] = []
    projection = {"history": 0}
    for severity in [*SEVERITY_ORDER, *sorted(set(counts) - set(SEVERITY_ORDER))]:
        if len(rows) >= limit or not counts.get(severity):
            continue
        cursor = coll.find({**query, "severity": severity}, projection)
        cursor = cursor.sort([("created_at", ASCENDING), ("ts", ASCENDING)]).limit(
            limit - len(rows)
        )
        for doc in cursor:
            opened = doc.get("created_at") or doc.get("ts")
            age = (now - utc(opened)).total_seconds() if opened else None
            doc.update(
                id=str(doc["_id"]),
                status=doc.get("status") or OPEN,
                asset_class=_asset_class(universe, str(doc.get("symbol", ""))),
                age_s=age,
            )
            rows.append(doc)
    return Queue(rows, counts, [], options, filters, sum(counts.values()), limit)
