"""Shared fixtures: one real MongoDB-wire server (secantusd-py) per test session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pymongo
import pytest
from pymongo.database import Database

from quant_pipelines.storage import EmbeddedMongo, ensure_indexes, make_client
from quant_pipelines.storage.embedded import free_port


def _expected_cost(module_items: list[pytest.Item]) -> tuple[int, float]:
    """Sort key of a test module: wholly slow modules first (the long replays, the demo, the
    dev instance), then modules with some slow tests, then the rest; the longest own timeout
    first within each (the GOOG replay declares 30 minutes)."""
    slow = [bool(item.get_closest_marker("slow")) for item in module_items]
    timeouts = [m.args[0] for i in module_items for m in i.iter_markers("timeout") if m.args]
    return (0 if all(slow) else 1 if any(slow) else 2, -max(timeouts, default=0))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the slow modules first (a stable sort of whole modules).

    ``make test`` runs two xdist workers that take one module at a time in collection order;
    a long module started last leaves one core idle at the end while it finishes.
    """
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    order = sorted(modules.values(), key=_expected_cost)
    items[:] = [item for module in order for item in module]


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedMongo]:
    """A secantusd-py process on a free loopback port with temporary storage.

    Provisioned and run exactly as in production: ``start()`` creates the administrator and
    the application user in the unauthenticated loopback window, then runs the server with
    ``--auth``. It also runs with ``--enable-test-commands`` so fault-injection tests can arm
    fail points (as the administrator: ``configureFailPoint`` is a cluster action).
    """
    server = EmbeddedMongo(
        tmp_path_factory.mktemp("mongo"), port=free_port(), extra_args=["--enable-test-commands"]
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mongo_uri(mongo_server: EmbeddedMongo) -> str:
    """Connection string of the session's server, authenticated as its administrator.

    The administrator has role ``root``: the tests create and drop their own ``qp_test_*``
    databases and arm fail points, which the least-privileged application user may not.
    Security tests that need the application user use ``mongo_server.app_uri``.
    """
    return mongo_server.uri


@pytest.fixture(scope="session")
def mongo_client(mongo_uri: str) -> Iterator[pymongo.MongoClient]:
    """A client built by the production factory."""
    client = make_client(mongo_uri, server_selection_timeout_ms=5_000, timeout_ms=60_000)
    yield client
    client.close()


@pytest.fixture
def db_name() -> str:
    """A fresh database name per test."""
    return f"qp_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def mongo_db(mongo_client: pymongo.MongoClient, db_name: str) -> Iterator[Database]:
    """An empty database with every index of the data model, dropped after the test."""
    db = mongo_client[db_name]
    ensure_indexes(db)
    yield db
    mongo_client.drop_database(db_name)


@pytest.fixture
def mongo_env(monkeypatch: pytest.MonkeyPatch, mongo_uri: str, db_name: str, mongo_db: Database):
    """Points MONGODB_URI / MONGODB_DB at the test server and a fresh database."""
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", db_name)
    return mongo_db
