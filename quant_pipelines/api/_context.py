"""What the routes share: the database, the universe and the strategy names."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import pymongo
from fastapi import Request
from pymongo.database import Database

from quant_pipelines.marketdata import Universe
from quant_pipelines.settings import Settings, uri_hosts
from quant_pipelines.storage import describe_failure, ensure_indexes, make_client

DbFactory = Callable[[], Database]


class _SettingsDatabase:
    """A database factory over one lazily built client (no I/O until first use)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: pymongo.MongoClient | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Database:
        with self._lock:
            if self._client is None:
                self._client = make_client(
                    self._settings.mongodb_uri,
                    server_selection_timeout_ms=self._settings.server_selection_timeout_ms,
                    timeout_ms=self._settings.timeout_ms,
                    app_name="quant_pipelines-api",
                )
            return self._client[self._settings.mongodb_db]

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


class ApiContext:
    """Shared state of one app: database access, indexes created once, universe, strategies.

    Args:
        source: Settings (the app owns a client built from them) or a database factory.
        universe: The tradable universe that requested symbols must belong to.
        strategies: Returns the registered strategy names.
        request_timeout_s: Deadline of the MongoDB work of one request (default: the
            client's server selection timeout).
    """

    def __init__(
        self,
        source: Settings | DbFactory,
        *,
        universe: Universe,
        strategies: Callable[[], Sequence[str]],
        request_timeout_s: float | None = None,
    ) -> None:
        self._timeout = request_timeout_s
        if isinstance(source, Settings):
            self._factory: DbFactory = _SettingsDatabase(source)
            self._uri: str | None = source.mongodb_uri
            if self._timeout is None:
                self._timeout = source.server_selection_timeout_ms / 1000
        else:
            self._factory, self._uri = source, None
        self.universe = universe
        self.strategies = strategies
        self._indexed = False
        self._lock = threading.Lock()

    def database(self) -> Database:
        """The project database, with every index ensured on first use."""
        db = self._factory()
        if not self._indexed:
            with self._lock:
                if not self._indexed:
                    ensure_indexes(db)  # the request_id unique index backs idempotency
                    self._indexed = True
        return db

    def request_timeout_s(self) -> float:
        """The MongoDB deadline of one request, in seconds (no I/O)."""
        if self._timeout is None:
            self._timeout = self._factory().client.options.server_selection_timeout
        return self._timeout

    def raw_database(self) -> Database:
        """The database without the index check (for the health probe)."""
        return self._factory()

    def _error_uri(self) -> str:
        if self._uri is not None:
            return self._uri
        try:
            seeds = self._factory().client.topology_description.server_descriptions()
            return "mongodb://" + ",".join(sorted(f"{h}:{p}" for h, p in seeds))
        except Exception:  # naming the host must never fail the answer
            return "mongodb://(unknown host)"

    def describe_failure(self, exc: BaseException) -> str:
        """One line naming the MongoDB hosts (never a password) and the kind of failure."""
        return describe_failure(self._error_uri(), exc)

    def hosts(self) -> str:
        """The MongoDB hosts, without credentials, for the health answer."""
        return uri_hosts(self._error_uri())

    def close(self) -> None:
        """Closes the client the app built (a given factory's client is left open)."""
        if isinstance(self._factory, _SettingsDatabase):
            self._factory.close()


def api_context(request: Request) -> ApiContext:
    """FastAPI dependency: the app's :class:`ApiContext`."""
    return request.app.state.api


def database(request: Request) -> Database:
    """FastAPI dependency: the project database."""
    return request.app.state.api.database()
