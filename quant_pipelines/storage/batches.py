"""The ``ingest_batches`` collection: one document per ingested partition (upserted)."""

from __future__ import annotations

import datetime as dt

from pymongo.database import Database

from quant_pipelines.storage.collections import INGEST_BATCHES


class IngestBatchesRepository:
    """Records and reads ingest batches, keyed by ``batch_id`` (one per asset partition)."""

    def __init__(self, db: Database) -> None:
        self._coll = db[INGEST_BATCHES]

    def record(self, batch_id: str, doc: dict, *, run_id: str | None = None) -> None:
        """Upserts the batch document; the run ids that wrote it accumulate in ``runs``.

        Args:
            batch_id: Natural key, e.g. ``market_bars/equity:2024-01-02``.
            doc: Fields to set (partition, symbols, row counts, timings ...).
            run_id: Dagster run id of this attempt.
        """
        now = dt.datetime.now(dt.UTC)
        update: dict = {
            "$set": {**doc, "batch_id": batch_id, "updated_at": now},
            "$setOnInsert": {"created_at": now},
        }
        if run_id:
            update["$addToSet"] = {"runs": run_id}
        self._coll.update_one({"batch_id": batch_id}, update, upsert=True)

    def get(self, batch_id: str) -> dict | None:
        """The batch document, or None."""
        return self._coll.find_one({"batch_id": batch_id}, {"_id": 0})
