"""``MongoResource``: the project database, pinged and indexed once per process."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pymongo
from pydantic import PrivateAttr
from pymongo.database import Database
from pymongo.uri_parser import parse_uri

from quant_pipelines.settings import embedded_mongo_uri, read_credentials, redact_uri
from quant_pipelines.storage import BarsRepository, IngestBatchesRepository, make_client, ping
from quant_pipelines.storage.repositories import Repositories, ensure_indexes_once

#: Clients (by resolved URI and options) that answered a ping in this process.
_PINGED: set[tuple[str, int]] = set()


class MongoResource(dg.ConfigurableResource):
    """A MongoDB database reached through pymongo, with explicit timeouts.

    ``uri`` is bound with ``dg.EnvVar("MONGODB_URI")`` when that variable is set, so the
    Dagster UI shows the variable's name and never its value. For the embedded server, ``uri``
    carries no credentials and ``credentials_file`` names the owner-only file they are read
    from when the client connects, so the password is in no config the UI shows.

    The first :meth:`get_db` of a process pings the server (failing fast, naming the host) and
    ensures the data model's indexes; later calls do neither.
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
        """The (lazily created, per-resource) client."""
        if self._client is None:
            self._client = make_client(
                self._client_uri(),
                server_selection_timeout_ms=self.server_selection_timeout_ms,
                timeout_ms=self.timeout_ms,
            )
        return self._client

    def get_db(self, *, check: bool = True) -> Database:
        """The project database; pinged and indexed on the first call of the process.

        Args:
            check: Ping the server on the first call (fail fast, naming the host).

        Raises:
            MongoUnavailableError: The server is unreachable (message names the host only).
        """
        client = self.get_client()
        marker = (self.uri, self.server_selection_timeout_ms)
        if check and marker not in _PINGED:
            ping(client, self.uri)
            _PINGED.add(marker)
        db = client[self.database]
        ensure_indexes_once(db)
        return db

    def repos(self) -> Repositories:
        """Every repository over the project database (indexes ensured once per process)."""
        return Repositories.over(self.get_db())

    def bars(self) -> BarsRepository:
        """Repository over the ``bars`` collection (prefer ``repos().bars``)."""
        return self.repos().bars

    def ingest_batches(self) -> IngestBatchesRepository:
        """Repository over the ``ingest_batches`` collection (prefer ``repos().batches``)."""
        return self.repos().batches

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Closes the client at the end of the step."""
        if self._client is not None:
            self._client.close()
            self._client = None
