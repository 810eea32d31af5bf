"""Typed Dagster resources: MongoDB, the market-data source, and a partition-aware IO manager."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Literal

import dagster as dg
import pandas as pd
import pymongo
from pydantic import PrivateAttr
from pymongo import ReplaceOne
from pymongo.database import Database
from pymongo.uri_parser import parse_uri

from quant_pipelines.marketdata import FileSource, SyntheticSource, Universe, load_universe
from quant_pipelines.settings import (
    Settings,
    embedded_credentials_path,
    embedded_mongo_uri,
    load_settings,
    read_credentials,
    redact_uri,
)
from quant_pipelines.storage import (
    BarsRepository,
    IngestBatchesRepository,
    ensure_indexes,
    make_client,
    ping,
)


class MongoResource(dg.ConfigurableResource):
    """A MongoDB database reached through pymongo, with explicit timeouts.

    ``uri`` is bound with ``dg.EnvVar("MONGODB_URI")`` when that variable is set, so the
    Dagster UI shows the variable's name and never its value. For the embedded server, ``uri``
    carries no credentials and ``credentials_file`` names the owner-only file they are read
    from when the client connects, so the password is in no config the UI shows.
    """

    uri: str
    database: str = "quant_pipelines"
    server_selection_timeout_ms: int = 5_000
    timeout_ms: int = 60_000
    credentials_file: str = ""

    _client: pymongo.MongoClient | None = PrivateAttr(default=None)

    @property
    def redacted_uri(self) -> str:
        """The URI with any password masked, for logs."""
        return redact_uri(self.uri)

    def _client_uri(self) -> str:
        """``uri`` with the embedded app user's credentials when ``credentials_file`` is set."""
        if not self.credentials_file:
            return self.uri
        credentials = read_credentials(Path(self.credentials_file))
        if credentials is None:  # not provisioned yet: the server refuses, naming the cause
            return self.uri
        host, port = parse_uri(self.uri)["nodelist"][0]
        return embedded_mongo_uri(
            port, host=host, user=credentials.app_user, password=credentials.app_password
        )

    def get_client(self) -> pymongo.MongoClient:
        """The (lazily created, per-process) client."""
        if self._client is None:
            self._client = make_client(
                self._client_uri(),
                server_selection_timeout_ms=self.server_selection_timeout_ms,
                timeout_ms=self.timeout_ms,
            )
        return self._client

    def get_db(self, *, check: bool = True) -> Database:
        """The project database, after a ping and an idempotent index check.

        Raises:
            MongoUnavailableError: The server is unreachable (message names the host only).
        """
        client = self.get_client()
        if check:
            ping(client, self.uri)
        db = client[self.database]
        ensure_indexes(db)
        return db

    def bars(self) -> BarsRepository:
        """Repository over the ``bars`` collection."""
        return BarsRepository(self.get_db())

    def ingest_batches(self) -> IngestBatchesRepository:
        """Repository over the ``ingest_batches`` collection."""
        return IngestBatchesRepository(self.get_db())

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class MarketDataSource(dg.ConfigurableResource):
    """Where bars come from: the seeded synthetic source or CSV/Parquet files per symbol."""

    kind: Literal["synthetic", "files"] = "synthetic"
    seed: int = 7
    path: str = ""
    universe_path: str = ""

    def build(self) -> SyntheticSource | FileSource:
        """The domain source object."""
        if self.kind == "files":
            if not self.path:
                raise ValueError("MarketDataSource(kind='files') needs a path to the bar files")
            return FileSource(self.path)
        return SyntheticSource(seed=self.seed, universe=self.universe)

    @property
    def universe(self) -> Universe:
        """The symbol universe (the packaged default unless ``universe_path`` is set)."""
        return _universe(self.universe_path)

    @property
    def label(self) -> str:
        """Name recorded in each bar's ``source`` field."""
        return f"synthetic(seed={self.seed})" if self.kind == "synthetic" else f"files:{self.path}"


class MongoIOManager(dg.ConfigurableIOManager):
    """Stores DataFrame outputs in MongoDB, one collection per asset, one slice per partition.

    Each row becomes a document ``{_partition, _row, _index, <columns>}``, upserted on
    (``_partition``, ``_row``); rows left over from a longer earlier output of the same
    partition are deleted, so a re-run replaces its partition and nothing else.
    """

    mongo: MongoResource
    collection_prefix: str = "io_"

    def _collection(self, key: dg.AssetKey):
        db = self.mongo.get_db()
        coll = db[self.collection_prefix + "__".join(key.path)]
        coll.create_index([("_partition", 1), ("_row", 1)], unique=True, name="uniq_partition_row")
        return coll

    @staticmethod
    def _partitions(context: dg.OutputContext | dg.InputContext) -> list[str]:
        if context.has_asset_partitions:
            return list(context.asset_partition_keys)
        return ["__all__"]

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | None) -> None:
        if obj is None:
            return
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"MongoIOManager stores DataFrames, got {type(obj).__name__}")
        partitions = self._partitions(context)
        if len(partitions) != 1:
            raise ValueError("MongoIOManager writes one partition per output")
        partition = partitions[0]
        coll = self._collection(context.asset_key)
        frame = obj.reset_index(names="_index") if obj.index.name is None else obj.reset_index()
        index_name = obj.index.name or "_index"
        records = frame.to_dict(orient="records")
        ops = [
            ReplaceOne(
                {"_partition": partition, "_row": i},
                {**_bson_safe(rec), "_partition": partition, "_row": i, "_index_name": index_name},
                upsert=True,
            )
            for i, rec in enumerate(records)
        ]
        if ops:
            coll.bulk_write(ops, ordered=False)
        coll.delete_many({"_partition": partition, "_row": {"$gte": len(records)}})
        context.add_output_metadata({"rows": len(records), "collection": coll.name})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        coll = self._collection(context.asset_key)
        docs = list(
            coll.find({"_partition": {"$in": self._partitions(context)}}, {"_id": 0}).sort(
                [("_partition", 1), ("_row", 1)]
            )
        )
        if not docs:
            return pd.DataFrame()
        index_name = docs[0]["_index_name"]
        frame = pd.DataFrame(docs).drop(columns=["_partition", "_row", "_index_name"])
        return frame.set_index(index_name)


@lru_cache(maxsize=8)
def _universe(path: str) -> Universe:
    return load_universe(path or None)


def _bson_safe(record: dict) -> dict:
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


def mongo_resource(settings: Settings | None = None) -> MongoResource:
    """The MongoDB resource for ``settings``, binding the URI through ``dg.EnvVar`` when set."""
    settings = settings or load_settings()
    uri: str | dg.EnvVar = dg.EnvVar("MONGODB_URI")
    credentials = ""
    if settings.mongodb_is_embedded:
        node = parse_uri(settings.mongodb_uri)["nodelist"][0]
        uri = embedded_mongo_uri(node[1], host=node[0])
        credentials = str(embedded_credentials_path(settings.dagster_home))
    return MongoResource(
        uri=uri,
        credentials_file=credentials,
        database=settings.mongodb_db,
        server_selection_timeout_ms=settings.server_selection_timeout_ms,
        timeout_ms=settings.timeout_ms,
    )
