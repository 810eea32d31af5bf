"""Fixtures of the API tests: the real app over the session's MongoDB server."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo.database import Database
from starlette.exceptions import StarletteDeprecationWarning

from quant_pipelines.api import create_app
from quant_pipelines.storage.collections import OPTIMIZATION_REQUESTS

with warnings.catch_warnings():  # starlette 1.x prefers httpx2 for its TestClient
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient


@pytest.fixture
def client(mongo_db: Database) -> Iterator[TestClient]:
    """A TestClient over the real app, writing to the test's fresh database."""
    with TestClient(create_app(lambda: mongo_db)) as test_client:
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
