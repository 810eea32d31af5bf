"""Fixtures for Dagster tests: resources on the test MongoDB, small universes, CSV folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from quant_pipelines.defs.resources import MarketDataSource, MongoResource, UniverseResource


@pytest.fixture
def mongo_resource(mongo_uri: str, db_name: str, mongo_db) -> MongoResource:
    """The production resource pointed at the test server and a fresh database."""
    return MongoResource(uri=mongo_uri, database=db_name, timeout_ms=30_000)


@pytest.fixture
def small_universe(tmp_path: Path) -> Path:
    """Two equities and one crypto symbol."""
    path = tmp_path / "universe.yaml"
    path.write_text(
        "symbols:\n"
        "  - {name: AAPL, asset_class: equity}\n"
        "  - {name: SPY, asset_class: equity}\n"
        "  - {name: BTCUSD, asset_class: crypto}\n"
    )
    return path


@pytest.fixture
def synthetic_source(small_universe: Path) -> MarketDataSource:
    """The seeded synthetic source over the small universe."""
    return MarketDataSource(kind="synthetic", seed=11, universe_path=str(small_universe))


@pytest.fixture
def universe(small_universe: Path) -> UniverseResource:
    """The universe resource over the small universe (what assets and sensors read)."""
    return UniverseResource(path=str(small_universe))
