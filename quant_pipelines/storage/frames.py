"""DataFrame slices stored one document per row, keyed by (``_partition``, ``_row``).

The storage behind the Dagster IO manager: a re-write of a partition replaces that partition's
rows and nothing else.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pandas as pd
from pymongo import ReplaceOne
from pymongo.collection import Collection

from quant_pipelines.storage.repositories import database_key

_INDEXED: set[tuple[object, str, str]] = set()


class FrameSlicesRepository:
    """One collection of DataFrame slices; the unique index is ensured once per process.

    Args:
        collection: The collection holding the slices.
    """

    def __init__(self, collection: Collection) -> None:
        self._coll = collection
        marker = (*database_key(collection.database), collection.name)
        if marker not in _INDEXED:
            collection.create_index(
                [("_partition", 1), ("_row", 1)], unique=True, name="uniq_partition_row"
            )
            _INDEXED.add(marker)

    @property
    def name(self) -> str:
        """The collection's name."""
        return self._coll.name

    def replace(self, partition: str, frame: pd.DataFrame) -> int:
        """Stores ``frame`` as the rows of ``partition``, deleting rows left from a longer one.

        Returns:
            The number of rows stored.
        """
        index_name = frame.index.name or "_index"
        flat = frame.reset_index(names=index_name)
        records = flat.to_dict(orient="records")
        ops = [
            ReplaceOne(
                {"_partition": partition, "_row": i},
                {**_bson_safe(rec), "_partition": partition, "_row": i, "_index_name": index_name},
                upsert=True,
            )
            for i, rec in enumerate(records)
        ]
        if ops:
            self._coll.bulk_write(ops, ordered=False)
        self._coll.delete_many({"_partition": partition, "_row": {"$gte": len(records)}})
        return len(records)

    def read(self, partitions: Sequence[str]) -> pd.DataFrame:
        """The rows of ``partitions`` in write order, indexed as they were written."""
        docs = list(
            self._coll.find({"_partition": {"$in": list(partitions)}}, {"_id": 0}).sort(
                [("_partition", 1), ("_row", 1)]
            )
        )
        if not docs:
            return pd.DataFrame()
        index_name = docs[0]["_index_name"]
        frame = pd.DataFrame(docs).drop(columns=["_partition", "_row", "_index_name"])
        return frame.set_index(index_name)


def _bson_safe(record: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in record.items():
        if isinstance(value, pd.Timestamp):
            value = value.to_pydatetime()
        elif isinstance(value, float) and value != value:  # NaN
            value = None
        elif hasattr(value, "item"):  # numpy scalar
            value = value.item()
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        out[str(key)] = value
    return out
