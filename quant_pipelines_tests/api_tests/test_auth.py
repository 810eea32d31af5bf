"""Key repository, the verifier's cache and ``last_used_at`` throttle, and the guards' config."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi import Depends, Request
from fastapi.testclient import TestClient
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from quant_pipelines.api import create_app
from quant_pipelines.api._auth import require_read
from quant_pipelines.api._guards import allowed_hosts, env_int
from quant_pipelines.storage.api_keys import (
    ADMIN,
    ALERTS_WRITE,
    READ,
    ApiKeyError,
    ApiKeyNotFoundError,
    active_key_count,
    any_key_exists,
    create_key,
    find_key,
    hash_key,
    list_keys,
    revoke_key,
    touch_key,
)
from quant_pipelines.storage.collections import API_KEYS
from quant_pipelines_tests.api_tests.conftest import TEST_HOSTS, bearer


def test_repository_create_find_revoke(mongo_db: Database) -> None:
    assert not any_key_exists(mongo_db)
    raw, key = create_key(mongo_db, "  desk ", [READ, ALERTS_WRITE, READ])
    assert (key.name, key.scopes, key.revoked) == ("desk", (READ, ALERTS_WRITE), False)
    assert raw.startswith("qp_") and len(raw) == 46
    assert key.allows(READ) and key.allows(ALERTS_WRITE) and not key.allows(ADMIN)
    assert find_key(mongo_db, raw) == key
    assert find_key(mongo_db, raw + "x") is None
    assert find_key(mongo_db, key.key_hash) is None  # the hash is not a key
    with pytest.raises(ApiKeyError, match="already exists"):
        create_key(mongo_db, "desk", [READ])
    for scopes in ([], ["root"], [READ, "write"]):
        with pytest.raises(ApiKeyError):
            create_key(mongo_db, "other", scopes)
    with pytest.raises(ApiKeyError):
        create_key(mongo_db, "", [READ])
    assert active_key_count(mongo_db) == 1
    assert revoke_key(mongo_db, key.key_id).revoked
    again = revoke_key(mongo_db, "desk")  # idempotent, by name
    assert again.revoked and again.key_hash == hash_key(raw)
    assert find_key(mongo_db, raw).revoked
    assert active_key_count(mongo_db) == 0 and any_key_exists(mongo_db)
    with pytest.raises(ApiKeyNotFoundError):
        revoke_key(mongo_db, "nobody")
    admin_raw, admin = create_key(mongo_db, "boss", [ADMIN])
    assert all(admin.allows(s) for s in (READ, ALERTS_WRITE, "optimize:write"))
    assert [k.name for k in list_keys(mongo_db)] == ["desk", "boss"]
    assert admin_raw != raw


def test_unique_indexes_on_hash_and_name(mongo_db: Database) -> None:
    _, key = create_key(mongo_db, "one", [READ])
    doc = mongo_db[API_KEYS].find_one({"_id": key.key_id})
    for clash in ({"name": "two", "key_hash": doc["key_hash"]}, {"name": "one", "key_hash": "f"}):
        with pytest.raises(DuplicateKeyError):
            mongo_db[API_KEYS].insert_one({**doc, "_id": "key_other", **clash})


def test_last_used_at_is_written_at_most_once_per_interval(mongo_db: Database) -> None:
    _, key = create_key(mongo_db, "busy", [READ])
    t0 = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
    assert touch_key(mongo_db, key.key_id, now=t0)
    assert not touch_key(mongo_db, key.key_id, now=t0 + dt.timedelta(seconds=59))
    assert touch_key(mongo_db, key.key_id, now=t0 + dt.timedelta(seconds=61))
    (stored,) = list_keys(mongo_db)
    assert stored.last_used_at == t0 + dt.timedelta(seconds=61)


class _Counting:
    """A database factory counting its calls (each is a possible round trip)."""

    def __init__(self, db: Database) -> None:
        self.db, self.calls = db, 0

    def __call__(self) -> Database:
        self.calls += 1
        return self.db


@pytest.mark.parametrize(("ttl", "expected_calls"), [(60.0, 2), (0.0, 21)])
def test_validated_keys_are_cached(mongo_db: Database, ttl: float, expected_calls: int) -> None:
    raw, _ = create_key(mongo_db, "cached", [READ])
    factory = _Counting(mongo_db)
    app = create_app(factory, allowed_hosts=TEST_HOSTS, key_cache_ttl_s=ttl, request_timeout_s=5.0)
    with TestClient(app, headers=bearer(raw)) as client:
        for _ in range(20):  # /openapi.json touches the database only to authenticate
            assert client.get("/openapi.json").status_code == 200
    # With the cache: one lookup and one last_used_at write; without: a lookup per request
    # (and still a single write).
    assert factory.calls == expected_calls
    assert list_keys(mongo_db)[0].last_used_at is not None


def test_principal_is_on_request_state(mongo_db: Database) -> None:
    raw, key = create_key(mongo_db, "whoami", [READ])
    app = create_app(lambda: mongo_db, allowed_hosts=TEST_HOSTS)

    @app.get("/whoami", dependencies=[Depends(require_read)])
    def whoami(request: Request) -> dict[str, Any]:
        p = request.state.principal
        return {"name": p.name, "scopes": list(p.scopes), "key_id": p.key_id}

    with TestClient(app, headers=bearer(raw)) as client:
        assert client.get("/whoami").json() == {
            "name": "whoami",
            "scopes": [READ],
            "key_id": key.key_id,
        }
    with TestClient(app, headers={"Authorization": f"bearer  {raw}"}) as client:
        assert client.get("/whoami").status_code == 200  # scheme is case-insensitive


def test_allowed_hosts_configuration() -> None:
    assert allowed_hosts(env={}) == ["127.0.0.1", "localhost", "::1", "[::1]"]
    env = {"QP_API_ALLOWED_HOSTS": " API.internal.example, 10.0.0.5,,fe80::1 "}
    assert allowed_hosts(env=env) == [
        "api.internal.example",
        "10.0.0.5",
        "fe80::1",
        "[fe80::1]",
    ]
    assert allowed_hosts(["testserver"], env=env) == ["testserver"]
    with pytest.raises(ValueError):
        allowed_hosts([" "])


def test_quota_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert env_int("QP_X", 10, env={}) == 10
    assert env_int("QP_X", 10, env={"QP_X": "3"}) == 3
    for bad in ("0", "-1", "many"):
        with pytest.raises(ValueError, match="QP_X"):
            env_int("QP_X", 10, env={"QP_X": bad})
    monkeypatch.setenv("QP_MAX_ACTIVE_REQUESTS", "4")
    monkeypatch.setenv("QP_MAX_QUEUED_TRIALS", "900")
    quotas = create_app(lambda: None, allowed_hosts=TEST_HOSTS).state.quotas.quotas
    assert (quotas.max_active_requests, quotas.max_queued_trials) == (4, 900)
