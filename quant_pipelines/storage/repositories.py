"""The repositories of one database as a bundle, with indexes ensured once per process."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from pymongo.database import Database

from quant_pipelines.storage.alerts import AlertOutboxRepository
from quant_pipelines.storage.bars import BarsRepository
from quant_pipelines.storage.batches import IngestBatchesRepository
from quant_pipelines.storage.indexes import ensure_indexes
from quant_pipelines.storage.studies import StudiesRepository

_ENSURED: set[tuple[object, str]] = set()
_LOCK = threading.Lock()


def database_key(db: Database) -> tuple[object, str]:
    """(client address, database name): the identity of a database across clients."""
    client = db.client
    # The configured seed hosts: known without connecting, and stable once the driver has
    # discovered the rest of a replica set (unlike ``topology_description``).
    settings = getattr(client, "_topology_settings", None)
    seeds = tuple(sorted(settings.seeds)) if settings is not None else id(client)
    return seeds, db.name


def ensure_indexes_once(db: Database) -> bool:
    """Ensures the data model's indexes on ``db`` once per process.

    Args:
        db: The project database.

    Returns:
        True when this call created (or verified) the indexes, False when they were already
        ensured in this process.
    """
    key = database_key(db)
    if key in _ENSURED:
        return False
    with _LOCK:
        if key in _ENSURED:
            return False
        ensure_indexes(db)
        _ENSURED.add(key)
    return True


def forget_ensured_indexes() -> None:
    """Forgets which databases had their indexes ensured (tests drop databases)."""
    with _LOCK:
        _ENSURED.clear()


@dataclass(frozen=True)
class Repositories:
    """Every repository over one database; build it with :meth:`over`.

    Attributes:
        db: The project database.
        bars: The ``bars`` collection.
        batches: The ``ingest_batches`` collection.
        alerts: The ``alert_outbox`` collection.
    """

    db: Database
    bars: BarsRepository = field(init=False)
    batches: IngestBatchesRepository = field(init=False)
    alerts: AlertOutboxRepository = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bars", BarsRepository(self.db))
        object.__setattr__(self, "batches", IngestBatchesRepository(self.db))
        object.__setattr__(self, "alerts", AlertOutboxRepository(self.db))

    @classmethod
    def over(cls, db: Database, *, ensure: bool = True) -> Repositories:
        """The bundle over ``db``, after ensuring its indexes once per process.

        Args:
            db: The project database.
            ensure: Ensure the indexes (once per process per database).

        Returns:
            The repositories.
        """
        if ensure:
            ensure_indexes_once(db)
        return cls(db)

    @property
    def studies(self) -> StudiesRepository:
        """The optimizer's studies and trials (built on use: it checks its own indexes)."""
        return StudiesRepository(self.db)


__all__ = ["Repositories", "database_key", "ensure_indexes_once", "forget_ensured_indexes"]
