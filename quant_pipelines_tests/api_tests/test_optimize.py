"""POST /backtests/optimize: the 202 answer, idempotency, and every rejection writing nothing."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pymongo.database import Database

from quant_pipelines.api import MAX_BODY_BYTES, create_app
from quant_pipelines.storage.api_keys import OPTIMIZE_WRITE, create_key
from quant_pipelines.storage.collections import OPTIMIZATION_REQUESTS
from quant_pipelines_tests.api_tests.conftest import (
    ADMIN_KEY_NAME,
    TEST_HOSTS,
    bearer,
    request_count,
)

URL = "/backtests/optimize"


def _with(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    for key, value in changes.items():
        if value is _DROP:
            out.pop(key)
        else:
            out[key] = value
    return out


_DROP = object()


def test_accepted_answer_and_document(client: TestClient, mongo_db: Database, valid_body):
    answer = client.post(URL, json=valid_body)
    assert answer.status_code == 202
    data = answer.json()
    assert set(data) == {"request_id", "status_url", "status"}
    assert data["status"] == "queued"
    assert data["status_url"] == f"/backtests/optimize/{data['request_id']}"
    assert answer.headers["location"] == data["status_url"]
    doc = mongo_db[OPTIMIZATION_REQUESTS].find_one({"request_id": data["request_id"]})
    assert doc["status"] == "queued"
    assert doc["urgent"] is False
    assert doc["run_id"] is None
    assert doc["asset_classes"] == ["equity"]
    assert doc["params"] == {**valid_body, "validation": "walk_forward", "cpcv": None}
    assert doc["history"][0]["status"] == "queued"
    assert client.get(data["status_url"]).status_code == 200


def test_defaults_and_canonical_symbols(client: TestClient, mongo_db: Database):
    body = {"strategy": "momentum", "symbols": ["btcusd", "EURUSD"], "start": "2021-01-01"}
    answer = client.post(URL, json={**body, "end": "2021-06-30", "urgent": True})
    assert answer.status_code == 202
    doc = mongo_db[OPTIMIZATION_REQUESTS].find_one()
    assert doc["params"]["symbols"] == ["BTCUSD", "EURUSD"]
    assert doc["params"]["n_trials"] == 100
    assert (doc["params"]["objective"], doc["params"]["sampler"]) == ("sharpe", "tpe")
    # Omitted walk_forward means the default validation folds (ranked on validation).
    assert doc["params"]["walk_forward"]["n_folds"] == 4
    assert doc["params"]["validation"] == "walk_forward"
    assert doc["urgent"] is True
    assert doc["asset_classes"] == ["crypto", "fx"]


def test_walk_forward_true_means_default_folds(client: TestClient, mongo_db: Database, valid_body):
    assert client.post(URL, json=_with(valid_body, walk_forward=True)).status_code == 202
    wf = mongo_db[OPTIMIZATION_REQUESTS].find_one()["params"]["walk_forward"]
    assert wf == {"n_folds": 4, "scheme": "anchored", "train_frac": 0.5, "purge": 0}


def test_walk_forward_false_means_no_folds(client: TestClient, mongo_db: Database, valid_body):
    assert client.post(URL, json=_with(valid_body, walk_forward=False)).status_code == 202
    params = mongo_db[OPTIMIZATION_REQUESTS].find_one()["params"]
    assert (params["walk_forward"], params["validation"]) == (False, "none")


def test_cpcv_is_a_validation_scheme(client: TestClient, mongo_db: Database, valid_body):
    body = _with(valid_body, validation="cpcv", cpcv={"n_groups": 8, "embargo": 5})
    assert client.post(URL, json=body).status_code == 202
    params = mongo_db[OPTIMIZATION_REQUESTS].find_one()["params"]
    assert params["validation"] == "cpcv"
    assert params["cpcv"] == {"n_groups": 8, "n_test_groups": 2, "purge": 0, "embargo": 5}
    bad = client.post(URL, json=_with(valid_body, validation="kfold"))
    assert bad.status_code == 422
    assert "walk_forward" in bad.text and "cpcv" in bad.text
    assert mongo_db[OPTIMIZATION_REQUESTS].count_documents({}) == 1


def test_idempotency_key_gives_one_document(client: TestClient, mongo_db: Database, valid_body):
    headers = {"Idempotency-Key": "7d1c9a2e-retry-safe"}
    first = client.post(URL, json=valid_body, headers=headers)
    again = client.post(URL, json=dict(reversed(valid_body.items())), headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert request_count(mongo_db) == 1
    other = client.post(URL, json=valid_body, headers={"Idempotency-Key": "another-key"})
    assert other.json()["request_id"] != first.json()["request_id"]
    assert client.post(URL, json=valid_body).json()["request_id"] != first.json()["request_id"]
    assert request_count(mongo_db) == 3


def test_idempotency_key_with_another_body_is_409(
    client: TestClient, mongo_db: Database, valid_body
):
    headers = {"Idempotency-Key": "key-1"}
    first = client.post(URL, json=valid_body, headers=headers).json()
    conflict = client.post(URL, json=_with(valid_body, seed=8), headers=headers)
    assert conflict.status_code == 409
    assert first["request_id"] in conflict.json()["detail"]
    docs = list(mongo_db[OPTIMIZATION_REQUESTS].find())
    assert len(docs) == 1
    assert docs[0]["params"]["seed"] == 7


def _rejections() -> list[tuple[str, Any, dict[str, str]]]:
    """(case id, body change or raw bytes, headers); every one must be refused."""
    return [
        ("extra-field", {"priority": 1}, {}),
        ("operator-key", {"$where": "1"}, {}),
        ("operator-strategy", {"strategy": {"$ne": ""}}, {}),
        ("dollar-strategy", {"strategy": "$ne"}, {}),
        ("operator-in-symbols", {"symbols": [{"$gt": ""}]}, {}),
        ("dollar-symbol", {"symbols": ["$AAPL"]}, {}),
        ("symbols-not-list", {"symbols": "AAPL"}, {}),
        ("symbols-empty", {"symbols": []}, {}),
        ("symbols-duplicate", {"symbols": ["AAPL", "aapl"]}, {}),
        ("symbols-too-many", {"symbols": ["AAPL"] * 101}, {}),
        ("missing-strategy", {"strategy": _DROP}, {}),
        ("missing-end", {"end": _DROP}, {}),
        ("start-after-end", {"start": "2023-01-01"}, {}),
        ("start-equals-end", {"start": "2022-12-31"}, {}),
        ("date-as-int", {"start": 20200101}, {}),
        ("date-with-slashes", {"start": "2020/01/01"}, {}),
        ("datetime-not-date", {"end": "2022-12-31T00:00:00"}, {}),
        ("impossible-date", {"end": "2022-02-30"}, {}),
        ("trials-zero", {"n_trials": 0}, {}),
        ("trials-too-many", {"n_trials": 2001}, {}),
        ("trials-string", {"n_trials": "50"}, {}),
        ("trials-float", {"n_trials": 50.5}, {}),
        ("trials-bool", {"n_trials": True}, {}),
        ("objective-unknown", {"objective": "profit"}, {}),
        ("objective-operator", {"objective": {"$in": ["sharpe"]}}, {}),
        ("sampler-unknown", {"sampler": "grid"}, {}),
        ("seed-negative", {"seed": -1}, {}),
        ("seed-huge", {"seed": 2**40}, {}),
        ("walk-forward-string", {"walk_forward": "yes"}, {}),
        ("walk-forward-one-fold", {"walk_forward": {"n_folds": 1}}, {}),
        ("walk-forward-extra", {"walk_forward": {"n_folds": 3, "$gt": 1}}, {}),
        ("walk-forward-scheme", {"walk_forward": {"scheme": "expanding"}}, {}),
        ("urgent-string", {"urgent": "true"}, {}),
        ("urgent-int", {"urgent": 1}, {}),
        ("bad-idempotency-key", {}, {"Idempotency-Key": "$ne"}),
        ("long-idempotency-key", {}, {"Idempotency-Key": "k" * 256}),
    ]


@pytest.mark.parametrize(
    ("change", "headers"), [r[1:] for r in _rejections()], ids=[r[0] for r in _rejections()]
)
def test_rejected_bodies_write_nothing(
    client: TestClient, mongo_db: Database, valid_body, change, headers
):
    answer = client.post(URL, json=_with(valid_body, **change), headers=headers)
    assert answer.status_code == 422, answer.text
    assert isinstance(answer.json()["detail"], list)
    assert request_count(mongo_db) == 0


def test_unknown_strategy_lists_known_ones(client: TestClient, mongo_db: Database, valid_body):
    answer = client.post(URL, json=_with(valid_body, strategy="buy_the_dip"))
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "strategy"]
    assert "sma_crossover" in error["msg"]
    assert "momentum" in error["ctx"]["known"]
    assert request_count(mongo_db) == 0


def test_unknown_symbols_are_named(client: TestClient, mongo_db: Database, valid_body):
    answer = client.post(URL, json=_with(valid_body, symbols=["AAPL", "TSLA", "DOGEUSD"]))
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["ctx"]["unknown"] == ["TSLA", "DOGEUSD"]
    assert "TSLA" in error["msg"]
    assert "DOGEUSD" in error["msg"]
    assert request_count(mongo_db) == 0


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'"a string"', "application/json"),
        (b"null", "application/json"),
        (b"", "application/json"),
    ],
    ids=["invalid-json", "array", "string", "null", "empty"],
)
def test_malformed_payloads_write_nothing(
    client: TestClient, mongo_db: Database, content, content_type
):
    headers = {"content-type": content_type} if content_type else {}
    answer = client.post(URL, content=content, headers=headers)
    assert answer.status_code == 422
    assert request_count(mongo_db) == 0


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        None,
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json-patch+json",
    ],
)
def test_bodies_not_declared_json_are_415(
    client: TestClient, mongo_db: Database, valid_body, content_type
):
    headers = {"content-type": content_type} if content_type else {}
    answer = client.post(URL, content=json.dumps(valid_body).encode(), headers=headers)
    assert answer.status_code == 415
    assert request_count(mongo_db) == 0


def test_json_with_charset_is_accepted(client: TestClient, mongo_db: Database, valid_body):
    headers = {"content-type": "Application/JSON; charset=utf-8"}
    answer = client.post(URL, content=json.dumps(valid_body).encode(), headers=headers)
    assert answer.status_code == 202
    assert request_count(mongo_db) == 1


def test_requester_is_the_key_name(client: TestClient, mongo_db: Database, valid_body):
    answer = client.post(URL, json=valid_body)
    assert answer.status_code == 202
    doc = mongo_db[OPTIMIZATION_REQUESTS].find_one({"request_id": answer.json()["request_id"]})
    assert doc["requested_by"] == ADMIN_KEY_NAME
    assert client.post(URL, json={**valid_body, "actor": "x"}).status_code == 422  # no such field


def test_optimize_needs_the_optimize_write_scope(
    read_client: TestClient, anon_client: TestClient, mongo_db: Database, valid_body
):
    forbidden = read_client.post(URL, json=valid_body)
    assert forbidden.status_code == 403
    assert "optimize:write" in forbidden.json()["detail"]
    anonymous = anon_client.post(URL, json=valid_body)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    bad = anon_client.post(URL, json=valid_body, headers=bearer("qp_not-a-key"))
    assert bad.status_code == 401
    assert request_count(mongo_db) == 0


def test_quotas_answer_429_and_write_nothing(
    mongo_db: Database, api_keys: dict[str, str], valid_body
):
    app = create_app(
        lambda: mongo_db, allowed_hosts=TEST_HOSTS, max_active_requests=2, max_queued_trials=120
    )
    keyed = {"Idempotency-Key": "k-1"}
    first = _with(valid_body, n_trials=50)
    with TestClient(app, headers=bearer(api_keys["admin"])) as admin:
        assert admin.post(URL, json=first, headers=keyed).status_code == 202
        too_many_trials = admin.post(URL, json=_with(valid_body, n_trials=71))
        assert too_many_trials.status_code == 429
        assert int(too_many_trials.headers["retry-after"]) > 0
        assert "120" in too_many_trials.json()["detail"]
        assert admin.post(URL, json=_with(valid_body, n_trials=70)).status_code == 202
        too_many_requests = admin.post(URL, json=_with(valid_body, n_trials=1))
        assert too_many_requests.status_code == 429
        assert "retry-after" in too_many_requests.headers
        assert request_count(mongo_db) == 2
        # Replaying an accepted request writes nothing, so the full quota does not refuse it.
        replay = admin.post(URL, json=first, headers=keyed)
        assert replay.status_code == 202
        assert replay.headers["idempotent-replayed"] == "true"
        # Finished requests no longer count.
        mongo_db[OPTIMIZATION_REQUESTS].update_many({}, {"$set": {"status": "succeeded"}})
        assert admin.post(URL, json=_with(valid_body, n_trials=120)).status_code == 202
        assert request_count(mongo_db) == 3
    # Another key has its own quota.
    raw, _ = create_key(mongo_db, "second-desk", [OPTIMIZE_WRITE])
    with TestClient(app, headers=bearer(raw)) as other:
        assert other.post(URL, json=_with(valid_body, n_trials=1)).status_code == 202


def test_oversized_body_by_content_length_is_413(client: TestClient, mongo_db: Database):
    padding = "x" * MAX_BODY_BYTES
    answer = client.post(URL, json={"strategy": "sma_crossover", "padding": padding})
    assert answer.status_code == 413
    assert "65536" in answer.json()["detail"]
    assert request_count(mongo_db) == 0


def test_oversized_chunked_body_is_413(client: TestClient, mongo_db: Database, valid_body):
    def chunks():
        yield b'{"strategy": "sma_crossover", "pad": "'
        for _ in range(70):
            yield b"y" * 1024
        yield b'"}'

    answer = client.post(URL, content=chunks(), headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert request_count(mongo_db) == 0


def test_body_just_under_the_limit_is_parsed(client: TestClient, mongo_db: Database):
    body = b'{"pad": "' + b"z" * (MAX_BODY_BYTES - 20) + b'"}'
    answer = client.post(URL, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422  # read and validated, not refused for its size
    assert request_count(mongo_db) == 0


def test_malformed_content_length_is_400(client: TestClient, mongo_db: Database, valid_body):
    headers = {"content-type": "application/json", "content-length": "ten"}
    answer = client.post(URL, content=b"{}", headers=headers)
    assert answer.status_code == 400
    assert request_count(mongo_db) == 0
