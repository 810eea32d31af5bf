"""GET /healthz and MongoDB outages: 200 when MongoDB answers, 503 naming the host otherwise."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from quant_pipelines.api import create_app
from quant_pipelines.settings import Settings
from quant_pipelines.storage.embedded import free_port
from quant_pipelines_tests.api_tests.conftest import TEST_HOSTS, bearer

PASSWORD = "hunter2-s3cret"


@pytest.fixture
def unreachable_client() -> TestClient:
    """The app built from settings naming a free loopback port (nothing listens there)."""
    port = free_port()
    settings = Settings(
        mongodb_uri=f"mongodb://analyst:{PASSWORD}@127.0.0.1:{port}/?directConnection=true",
        mongodb_db="qp_unreachable",
        mongodb_is_embedded=False,
        server_selection_timeout_ms=200,
        timeout_ms=1_000,
    )
    app = create_app(settings, allowed_hosts=TEST_HOSTS)
    with TestClient(app, headers=bearer("qp_some-key-that-cannot-be-checked")) as test_client:
        test_client.port = port
        yield test_client


def test_healthz_ok(client: TestClient, mongo_uri: str):
    answer = client.get("/healthz")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok"
    assert body["mongodb"] in mongo_uri


def test_healthz_ok_from_settings(mongo_uri: str, db_name: str):
    settings = Settings(mongodb_uri=mongo_uri, mongodb_db=db_name)
    with TestClient(create_app(settings, allowed_hosts=TEST_HOSTS)) as test_client:
        assert test_client.get("/healthz").json()["status"] == "ok"  # no key needed


def test_healthz_unreachable_names_host_not_password(unreachable_client: TestClient):
    answer = unreachable_client.get("/healthz")
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "unavailable"
    assert body["mongodb"] == f"127.0.0.1:{unreachable_client.port}"
    assert f"127.0.0.1:{unreachable_client.port}" in body["detail"]
    assert "unreachable" in body["detail"]
    assert PASSWORD not in answer.text
    assert "analyst" not in answer.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/backtests/optimize"),
        ("get", "/backtests/optimize/req_0123"),
        ("get", "/backtests/leaderboard"),
        ("get", "/alerts"),
        ("post", "/alerts/65a0a0a0a0a0a0a0a0a0a0a0/ack"),
    ],
)
def test_routes_answer_503_when_mongodb_is_down(
    unreachable_client: TestClient, valid_body, method, path
):
    kwargs = {"json": valid_body} if method == "post" else {}
    answer = getattr(unreachable_client, method)(path, **kwargs)
    assert answer.status_code == 503
    assert f"127.0.0.1:{unreachable_client.port}" in answer.json()["detail"]
    assert PASSWORD not in answer.text


def test_missing_key_is_401_without_touching_mongodb(unreachable_client: TestClient):
    del unreachable_client.headers["authorization"]
    answer = unreachable_client.post("/backtests/optimize", json={"strategy": {"$ne": ""}})
    assert answer.status_code == 401
    assert unreachable_client.get("/alerts").status_code == 401


def test_non_json_body_is_415_without_touching_mongodb(unreachable_client: TestClient):
    answer = unreachable_client.post("/backtests/optimize", data={"strategy": "sma_crossover"})
    assert answer.status_code == 415


def test_docs_need_the_read_scope(anon_client: TestClient, read_client: TestClient):
    assert anon_client.get("/openapi.json").status_code == 401
    assert anon_client.get("/docs").status_code == 401
    assert read_client.get("/openapi.json").status_code == 200


def test_openapi_docs(client: TestClient):
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert {"/backtests/optimize", "/backtests/optimize/{request_id}", "/healthz"} <= set(paths)
    assert {"/backtests/leaderboard", "/alerts", "/alerts/{alert_id}/false-positive"} <= set(paths)
    body = schema["components"]["schemas"]["OptimizeRequest"]
    assert body["additionalProperties"] is False
    assert "/openapi.json" not in paths and "/docs" not in paths
