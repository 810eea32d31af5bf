"""Bars repository: bulk upserts on (symbol, ts) and range reads as tz-aware DataFrames."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pymongo import UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from quant_pipelines._utils.time import utc
from quant_pipelines.storage.collections import BARS

OHLCV = ("open", "high", "low", "close", "volume")
_DUPLICATE_KEY = 11000


@dataclass(frozen=True)
class UpsertReport:
    """What one bulk upsert did.

    Attributes:
        inserted: New documents.
        updated: Existing documents whose values changed or were rewritten.
        rows: Rows received.
    """

    inserted: int
    updated: int
    rows: int


def _to_utc_datetimes(index: pd.DatetimeIndex) -> list[dt.datetime]:
    if index.tz is None:
        raise ValueError("bars index must be tz-aware (UTC)")
    return list(index.tz_convert("UTC").to_pydatetime())


def _clean(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def bar_documents(
    bars: pd.DataFrame,
    *,
    symbol: str,
    source: str,
    batch_id: str,
    invalid_ts: Iterable[pd.Timestamp] = (),
    issues_by_ts: dict[pd.Timestamp, list[str]] | None = None,
) -> list[dict]:
    """Turns a bar frame into ``bars`` documents (NaN stored as null).

    Args:
        bars: Frame in the bar schema (index ``ts`` UTC, OHLCV columns).
        symbol: Symbol of every row.
        source: Name of the source that produced the rows.
        batch_id: Ingest batch the rows belong to.
        invalid_ts: Timestamps of rows that failed validation; stored with ``valid: False``
            so that they are kept for analysts but never read as data.
        issues_by_ts: Rule names broken by each invalid row.

    Returns:
        One document per row.
    """
    invalid = set(invalid_ts)
    issues_by_ts = issues_by_ts or {}
    values = bars.loc[:, list(OHLCV)].to_numpy(dtype=float)
    docs = []
    for ts, ts_py, row in zip(bars.index, _to_utc_datetimes(bars.index), values, strict=True):
        doc = {
            "symbol": symbol,
            "ts": ts_py,
            **{k: _clean(float(v)) for k, v in zip(OHLCV, row, strict=True)},
            "source": source,
            "batch_id": batch_id,
            "valid": ts not in invalid,
        }
        if ts in issues_by_ts:
            doc["issues"] = sorted(set(issues_by_ts[ts]))
        docs.append(doc)
    return docs


class BarsRepository:
    """Reads and writes the ``bars`` collection.

    Writes are idempotent upserts on the natural key (symbol, ts): a retried run leaves the
    same documents. Fields written by other stages (``quality.*``) are never overwritten.
    """

    def __init__(self, db: Database, *, batch_size: int = 5_000) -> None:
        self._coll = db[BARS]
        self._batch_size = batch_size

    @property
    def collection(self):
        """The underlying pymongo collection."""
        return self._coll

    def upsert_documents(self, docs: Sequence[dict]) -> UpsertReport:
        """Upserts bar documents in unordered batches.

        New keys are inserted with ``insert_many`` (the fast path); keys that already
        exist, or that a concurrent writer inserted meanwhile, are updated with ``$set``.

        Args:
            docs: Documents from :func:`bar_documents`; unique on (symbol, ts).

        Returns:
            Counts of inserted and updated documents.
        """
        inserted = updated = 0
        for start in range(0, len(docs), self._batch_size):
            chunk = docs[start : start + self._batch_size]
            existing = self._existing_keys(chunk)
            fresh = [d for d in chunk if (d["symbol"], d["ts"]) not in existing]
            stale = [d for d in chunk if (d["symbol"], d["ts"]) in existing]
            if fresh:
                conflicts = self._insert(fresh)
                inserted += len(fresh) - len(conflicts)
                stale.extend(conflicts)
            if stale:
                ops = [
                    UpdateOne(
                        {"symbol": d["symbol"], "ts": d["ts"]},
                        # A corrected row drops the issues its earlier, invalid version had.
                        {"$set": d} if "issues" in d else {"$set": d, "$unset": {"issues": ""}},
                        upsert=True,
                    )
                    for d in stale
                ]
                result = self._coll.bulk_write(ops, ordered=False)
                inserted += result.upserted_count
                updated += result.matched_count
        return UpsertReport(inserted=inserted, updated=updated, rows=len(docs))

    def _existing_keys(self, chunk: Sequence[dict]) -> set[tuple[str, dt.datetime]]:
        keys: set[tuple[str, dt.datetime]] = set()
        by_symbol: dict[str, list[dt.datetime]] = {}
        for d in chunk:
            by_symbol.setdefault(d["symbol"], []).append(d["ts"])
        for symbol, stamps in by_symbol.items():
            cursor = self._coll.find(
                {"symbol": symbol, "ts": {"$gte": min(stamps), "$lte": max(stamps)}},
                {"_id": 0, "ts": 1},
            )
            keys.update((symbol, doc["ts"]) for doc in cursor)
        return keys

    def _insert(self, fresh: list[dict]) -> list[dict]:
        """Inserts new documents; returns the ones that hit a duplicate key (a racing writer)."""
        # insert_many adds _id to the dicts it sends: send copies so a retry stays clean.
        payload = [dict(d) for d in fresh]
        try:
            self._coll.insert_many(payload, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            other = [e for e in errors if e.get("code") != _DUPLICATE_KEY]
            if other:
                raise
            return [fresh[e["index"]] for e in errors]
        return []

    def upsert(
        self, bars: pd.DataFrame, *, symbol: str, source: str, batch_id: str, **kwargs
    ) -> UpsertReport:
        """Upserts a bar frame for one symbol (see :func:`bar_documents` for ``kwargs``)."""
        docs = bar_documents(bars, symbol=symbol, source=source, batch_id=batch_id, **kwargs)
        return self.upsert_documents(docs)

    def read(
        self,
        symbol: str,
        start: dt.datetime | pd.Timestamp | str | None = None,
        end: dt.datetime | pd.Timestamp | str | None = None,
        *,
        include_invalid: bool = False,
        with_quality: bool = False,
    ) -> pd.DataFrame:
        """Reads one symbol's bars with ``start <= ts < end`` as a bar-schema DataFrame.

        Args:
            symbol: The symbol.
            start: Inclusive lower bound (UTC when naive); None for no bound.
            end: Exclusive upper bound (UTC when naive); None for no bound.
            include_invalid: Also return rows that failed validation.
            with_quality: Add the ``quality.*`` fields as columns (``quality_<name>``).

        Returns:
            Frame with a tz-aware UTC ``ts`` index, sorted, float OHLCV columns.
        """
        query = _range_query(symbol, start, end)
        if not include_invalid:
            query["valid"] = {"$ne": False}
        projection = {"_id": 0, "ts": 1, **{k: 1 for k in OHLCV}}
        if with_quality:
            projection["quality"] = 1
        docs = list(self._coll.find(query, projection).sort("ts", 1))
        return _frame(docs, with_quality=with_quality)

    def read_many(
        self, symbols: Iterable[str], start=None, end=None, **kwargs
    ) -> dict[str, pd.DataFrame]:
        """Reads several symbols; returns ``{symbol: frame}`` (see :meth:`read`)."""
        return {s: self.read(s, start, end, **kwargs) for s in symbols}

    def count(self, symbol: str | None = None, start=None, end=None) -> int:
        """Counts bar documents, optionally for one symbol and a ``[start, end)`` range."""
        return self._coll.count_documents(_range_query(symbol, start, end))

    def symbols(self) -> list[str]:
        """Distinct symbols present in the collection."""
        return sorted(self._coll.distinct("symbol"))

    def duplicate_keys(self, symbols: Sequence[str], start: object, end: object) -> list[dict]:
        """(symbol, ts) keys stored more than once with ``start <= ts <= end``.

        Returns:
            ``[{"_id": {"symbol", "ts"}, "n": count}]``; empty when the unique index holds.
        """
        if not symbols:
            return []
        match = {"symbol": {"$in": list(symbols)}, "ts": {"$gte": start, "$lte": end}}
        return list(
            self._coll.aggregate(
                [
                    {"$match": match},
                    {"$group": {"_id": {"symbol": "$symbol", "ts": "$ts"}, "n": {"$sum": 1}}},
                    {"$match": {"n": {"$gt": 1}}},
                ]
            )
        )

    def newest_valid_ts(self, symbols: Sequence[str]) -> dict[str, dt.datetime | None]:
        """The newest valid bar time of each symbol (None when it has no valid bar)."""
        newest: dict[str, dt.datetime | None] = {}
        for symbol in symbols:  # one index-backed lookup per symbol, on (symbol, ts)
            doc = self._coll.find_one(
                {"symbol": symbol, "valid": {"$ne": False}}, {"_id": 0, "ts": 1}, sort=[("ts", -1)]
            )
            newest[symbol] = None if doc is None else doc["ts"]
        return newest


def _range_query(symbol: str | None, start: object, end: object) -> dict:
    """The filter for one symbol (or all) and ``start <= ts < end`` (either bound optional)."""
    query: dict = {} if symbol is None else {"symbol": symbol}
    bounds = {}
    if start is not None:
        bounds["$gte"] = utc(start)
    if end is not None:
        bounds["$lt"] = utc(end)
    if bounds:
        query["ts"] = bounds
    return query


def _frame(docs: list[dict], *, with_quality: bool) -> pd.DataFrame:
    index = pd.DatetimeIndex([d["ts"] for d in docs], name="ts")
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    data = {
        k: np.array([np.nan if d.get(k) is None else d[k] for d in docs], dtype=float)
        for k in OHLCV
    }
    frame = pd.DataFrame(data, index=index)
    if with_quality:
        quality = pd.json_normalize([d.get("quality") or {} for d in docs])
        quality.index = index
        for col in quality.columns:
            frame[f"quality_{col}"] = quality[col]
    return frame
