"""Fixtures of the API tests: the real app over the session's MongoDB server.

``client`` is authenticated with an admin key created in the test database (header
``Authorization: Bearer <key>`` on every request); ``read_client`` has a ``read``-only key and
``anon_client`` none. All three share one app, so they see the same data.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo.database import Database
from starlette.exceptions import StarletteDeprecationWarning

from quant_pipelines.api import create_app
from quant_pipelines.api.app import DEFAULT_ALLOWED_HOSTS
from quant_pipelines.storage.api_keys import ADMIN, READ, create_key
from quant_pipelines.storage.collections import OPTIMIZATION_REQUESTS
from quant_pipelines.storage.indexes import ensure_indexes

with warnings.catch_warnings():  # starlette 1.x prefers httpx2 for its TestClient
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient


#: Hosts the test app accepts: the loopback names and TestClient's ``testserver``.
TEST_HOSTS = (*DEFAULT_ALLOWED_HOSTS, "testserver")
ADMIN_KEY_NAME = "test-admin"
READ_KEY_NAME = "test-reader"


def bearer(key: str) -> dict[str, str]:
    """The ``Authorization`` header of ``key``."""
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def api_keys(mongo_db: Database) -> dict[str, str]:
    """Raw keys created in the test database: ``admin`` and ``read``."""
    ensure_indexes(mongo_db)
    admin, _ = create_key(mongo_db, ADMIN_KEY_NAME, [ADMIN])
    reader, _ = create_key(mongo_db, READ_KEY_NAME, [READ])
    return {"admin": admin, "read": reader}


@pytest.fixture
def app(mongo_db: Database) -> Any:
    """The real app over the test's fresh database, accepting TestClient's host."""
    return create_app(lambda: mongo_db, allowed_hosts=TEST_HOSTS)


@pytest.fixture
def anon_client(app: Any) -> Iterator[TestClient]:
    """A TestClient without credentials."""
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def client(app: Any, api_keys: dict[str, str]) -> Iterator[TestClient]:
    """A TestClient authenticated with an admin key (every scope)."""
    with TestClient(app, headers=bearer(api_keys["admin"])) as test_client:
        yield test_client


@pytest.fixture
def read_client(app: Any, api_keys: dict[str, str]) -> Iterator[TestClient]:
    """A TestClient authenticated with a ``read``-only key."""
    with TestClient(app, headers=bearer(api_keys["read"])) as test_client:
        yield test_client


@pytest.fixture
def valid_body() -> dict[str, Any]:
    """A request body the API accepts."""
    return {
        "strategy": "sma_crossover",
        "symbols": ["AAPL", "MSFT"],
        "start": "2020-01-01",
        "end": "2022-12-31",
        "n_trials": 50,
        "objective": "sharpe",
        "sampler": "tpe",
        "seed": 7,
        "walk_forward": {"n_folds": 3, "scheme": "anchored", "train_frac": 0.6, "purge": 1},
        "urgent": False,
    }


def request_count(db: Database) -> int:
    """Documents in ``optimization_requests``."""
    return db[OPTIMIZATION_REQUESTS].count_documents({})
