"""``MongoIOManager``: DataFrame outputs stored in MongoDB, one slice per partition."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from quant_pipelines.defs._mongo import MongoResource
from quant_pipelines.storage.frames import FrameSlicesRepository


class MongoIOManager(dg.ConfigurableIOManager):
    """Stores DataFrame outputs in MongoDB, one collection per asset, one slice per partition.

    Each row becomes a document ``{_partition, _row, _index, <columns>}``, upserted on
    (``_partition``, ``_row``); rows left over from a longer earlier output of the same
    partition are deleted, so a re-run replaces its partition and nothing else.
    """

    mongo: MongoResource
    collection_prefix: str = "io_"

    def _slices(self, key: dg.AssetKey) -> FrameSlicesRepository:
        db = self.mongo.get_db()
        return FrameSlicesRepository(db[self.collection_prefix + "__".join(key.path)])

    @staticmethod
    def _partitions(context: dg.OutputContext | dg.InputContext) -> list[str]:
        if context.has_asset_partitions:
            return list(context.asset_partition_keys)
        return ["__all__"]

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | None) -> None:
        """Replaces the output's partition slice with the rows of ``obj``."""
        if obj is None:
            return
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"MongoIOManager stores DataFrames, got {type(obj).__name__}")
        partitions = self._partitions(context)
        if len(partitions) != 1:
            raise ValueError("MongoIOManager writes one partition per output")
        slices = self._slices(context.asset_key)
        rows = slices.replace(partitions[0], obj)
        context.add_output_metadata({"rows": rows, "collection": slices.name})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        """The stored rows of the input's partitions, indexed as they were written."""
        return self._slices(context.asset_key).read(self._partitions(context))
