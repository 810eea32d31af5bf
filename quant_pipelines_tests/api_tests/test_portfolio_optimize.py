"""POST /backtests/optimize with a portfolio study, and the stored portfolio_backtest."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pymongo.database import Database

from quant_pipelines.defs.optimization.planning import request_run
from quant_pipelines.storage import studies
from quant_pipelines.storage.collections import OPTIMIZATION_REQUESTS
from quant_pipelines_tests.api_tests.conftest import request_count

URL = "/backtests/optimize"


def test_portfolio_true_carries_to_the_run(client: TestClient, mongo_db: Database, valid_body):
    answer = client.post(URL, json={**valid_body, "portfolio": True})
    assert answer.status_code == 202, answer.text
    doc = mongo_db[OPTIMIZATION_REQUESTS].find_one({"request_id": answer.json()["request_id"]})
    assert doc["params"]["portfolio"] is True
    assert doc["params"]["portfolio_strategy"] == "signal_sma_crossover"
    assert doc["params"]["symbols"] == ["AAPL", "MSFT"]
    run = request_run(doc, doc["request_id"])
    assert run.partition_key.keys_by_dimension["strategy"] == "sma_crossover"
    config = run.run_config["ops"]["optimization_study"]["config"]
    assert config["portfolio"] is True
    assert config["portfolio_strategy"] == "signal_sma_crossover"
    # A single-asset request keeps its stored shape.
    plain = client.post(URL, json=valid_body).json()
    stored = mongo_db[OPTIMIZATION_REQUESTS].find_one({"request_id": plain["request_id"]})
    assert "portfolio" not in stored["params"]


def test_portfolio_strategy_over_a_universe(client: TestClient, mongo_db: Database, valid_body):
    body = {k: v for k, v in valid_body.items() if k != "symbols"}
    answer = client.post(URL, json={**body, "strategy": "xs_momentum", "universe": "equity"})
    assert answer.status_code == 202, answer.text
    doc = mongo_db[OPTIMIZATION_REQUESTS].find_one({"request_id": answer.json()["request_id"]})
    assert doc["params"]["portfolio"] is True and doc["params"]["universe"] == "equity"
    assert doc["params"]["portfolio_strategy"] == "xs_momentum"
    assert set(doc["params"]["symbols"]) == {"AAPL", "MSFT", "SPY", "NVDA"}
    run = request_run(doc, doc["request_id"])
    assert run.partition_key.keys_by_dimension["strategy"] == "xs_momentum"


def _bad() -> list[tuple[str, dict[str, Any], str]]:
    return [
        ("one-symbol", {"strategy": "xs_momentum", "symbols": ["AAPL"]}, "at least 2 symbols"),
        (
            "one-symbol-portfolio-true",
            {"portfolio": True, "symbols": ["AAPL"]},
            "signal_sma_crossover is cross-sectional and needs at least 2 symbols",
        ),
        ("unknown-symbol", {"strategy": "xs_momentum", "symbols": ["AAPL", "ZZZZ"]}, "ZZZZ"),
        ("unknown-strategy", {"strategy": "xs_nothing"}, "xs_momentum"),
        ("unknown-strategy-portfolio", {"strategy": "nope", "portfolio": True}, "unknown strategy"),
        ("both", {"universe": "fx"}, "not both"),
        ("neither", {"symbols": []}, "or a 'universe'"),
        ("bad-universe", {"universe": "bonds", "symbols": []}, "universe"),
        ("portfolio-string", {"portfolio": "yes"}, "portfolio"),
    ]


@pytest.mark.parametrize(("change", "named"), [b[1:] for b in _bad()], ids=[b[0] for b in _bad()])
def test_bad_portfolio_requests_are_422_and_write_nothing(
    client: TestClient, mongo_db: Database, valid_body, change, named
):
    answer = client.post(URL, json={**valid_body, **change})
    assert answer.status_code == 422, answer.text
    assert named in answer.text
    assert request_count(mongo_db) == 0


def test_portfolio_backtest_route(client: TestClient, mongo_db: Database):
    url = "/backtests/studies/pf/portfolio_backtest"
    assert client.get(url).status_code == 404
    stored = {
        "strategy": "xs_momentum",
        "trial": 3,
        "contributions": [{"symbol": "AAPL", "pnl": 10.0}],
        "png": b"\x89PNG-bytes",
    }
    studies.upsert_study(mongo_db, "pf", {"portfolio": True, "portfolio_backtest": stored})
    answer = client.get(url)
    assert answer.status_code == 200
    assert answer.json()["trial"] == 3 and "png" not in answer.json()
    image = client.get(url, params={"image": "true"})
    assert image.headers["content-type"] == "image/png"
    assert image.content == b"\x89PNG-bytes"
