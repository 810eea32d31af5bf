"""MongoDB access: client, indexes, repositories, the embedded server, Optuna journal, GridFS.

May import pymongo, gridfs, optuna and the domain packages; never dagster, api or defs.
"""

from __future__ import annotations

from quant_pipelines.storage import collections, requests, studies
from quant_pipelines.storage.bars import BarsRepository, UpsertReport, bar_documents
from quant_pipelines.storage.batches import IngestBatchesRepository
from quant_pipelines.storage.client import (
    MongoUnavailableError,
    describe_failure,
    get_database,
    make_client,
    ping,
)
from quant_pipelines.storage.embedded import EmbeddedMongo, EmbeddedMongoError, ServerStatus
from quant_pipelines.storage.indexes import ensure_indexes
from quant_pipelines.storage.optuna_journal import (
    MongoJournalBackend,
    MongoJournalStorage,
    optuna_storage,
)
from quant_pipelines.storage.policies import GridFSPolicyStore, PolicyNotFoundError
from quant_pipelines.storage.studies import StudiesRepository

__all__ = [
    "BarsRepository",
    "EmbeddedMongo",
    "EmbeddedMongoError",
    "GridFSPolicyStore",
    "IngestBatchesRepository",
    "MongoJournalBackend",
    "MongoJournalStorage",
    "MongoUnavailableError",
    "PolicyNotFoundError",
    "ServerStatus",
    "StudiesRepository",
    "UpsertReport",
    "bar_documents",
    "collections",
    "describe_failure",
    "ensure_indexes",
    "get_database",
    "make_client",
    "optuna_storage",
    "ping",
    "requests",
    "studies",
]
