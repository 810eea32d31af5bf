"""API keys, scopes, trusted hosts, JSON-only bodies, quotas and public binds: a real server.

Every test talks to uvicorn on a free loopback port with httpx (no TestClient): the app's
``Host`` allow-list is the default one (loopback names only), and the keys are created in
the test's database through the repository or the ``quant-pipelines api-keys`` command.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from bson import ObjectId
from pymongo.database import Database

from quant_pipelines.api import create_app
from quant_pipelines.cli import main
from quant_pipelines.cli._apikeys import BOOTSTRAP_KEY_FILE, BOOTSTRAP_KEY_NAME, prepare_api
from quant_pipelines.cli._bind import check_bind, is_loopback
from quant_pipelines.storage.api_keys import (
    ADMIN,
    ALERTS_WRITE,
    OPTIMIZE_WRITE,
    READ,
    create_key,
    list_keys,
)
from quant_pipelines.storage.collections import ANOMALIES, API_KEYS, OPTIMIZATION_REQUESTS
from quant_pipelines.storage.embedded import free_port

BODY: dict[str, Any] = {
    "strategy": "sma_crossover",
    "symbols": ["AAPL", "MSFT"],
    "start": "2020-01-01",
    "end": "2022-12-31",
    "n_trials": 50,
}
CLAIMED_ACTOR = "chief.risk.officer"


@contextlib.contextmanager
def running(app: Any) -> Iterator[str]:
    """Serves ``app`` with uvicorn on a free loopback port; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            httpx.get(f"{base}/healthz", timeout=2.0)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive()


def _auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


@pytest.fixture
def keys(mongo_db: Database) -> dict[str, str]:
    """One raw key per scope, named after it."""
    return {
        scope: create_key(mongo_db, f"key-{scope}", [scope])[0]
        for scope in (READ, OPTIMIZE_WRITE, ALERTS_WRITE, ADMIN)
    }


@pytest.fixture
def anomaly_id(mongo_db: Database) -> str:
    """An open anomaly."""
    doc = {"symbol": "AAPL", "ts": 1, "detector": "iforest", "severity": "critical"}
    doc["status"] = "open"
    return str(mongo_db[ANOMALIES].insert_one(doc).inserted_id)


@pytest.fixture
def base(mongo_db: Database) -> Iterator[str]:
    """A real server over the test database, default hosts, a 1-second key cache."""
    with running(create_app(lambda: mongo_db, key_cache_ttl_s=1.0)) as url:
        yield url


def _routes(anomaly: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(method, path, scope needed, request kwargs) of every route but /healthz."""
    missing = str(ObjectId())
    return [
        ("GET", "/alerts", READ, {}),
        ("GET", "/backtests/leaderboard", READ, {}),
        ("GET", "/backtests/optimize/req_0123", READ, {}),
        ("GET", "/openapi.json", READ, {}),
        ("GET", "/docs", READ, {}),
        ("POST", "/backtests/optimize", OPTIMIZE_WRITE, {"json": BODY}),
        ("POST", f"/alerts/{missing}/ack", ALERTS_WRITE, {"json": {}}),
        ("POST", f"/alerts/{missing}/resolve", ALERTS_WRITE, {}),
        ("POST", f"/alerts/{anomaly}/false-positive", ALERTS_WRITE, {}),
    ]


def test_401_403_matrix_per_route_and_scope(
    base: str, mongo_db: Database, keys: dict[str, str], anomaly_id: str
) -> None:
    routes = _routes(anomaly_id)
    with httpx.Client(base_url=base, timeout=10.0) as http:
        assert http.get("/healthz").status_code == 200  # the only open route
        for method, path, _, kwargs in routes:
            for key in (None, "qp_" + "x" * 43, "garbage with spaces"):
                answer = http.request(method, path, headers=_auth(key), **kwargs)
                assert answer.status_code == 401, (method, path, key)
                assert answer.headers["www-authenticate"].startswith("Bearer")
            basic = http.request(method, path, headers={"Authorization": "Basic eDp5"}, **kwargs)
            assert basic.status_code == 401
        assert mongo_db[OPTIMIZATION_REQUESTS].count_documents({}) == 0
        assert "history" not in mongo_db[ANOMALIES].find_one({"_id": ObjectId(anomaly_id)})
        for method, path, needed, kwargs in routes:
            for scope, key in keys.items():
                answer = http.request(method, path, headers=_auth(key), **kwargs)
                if scope in (needed, ADMIN):
                    assert answer.status_code not in (401, 403), (method, path, scope, answer.text)
                else:
                    assert answer.status_code == 403, (method, path, scope)
                    assert needed in answer.json()["detail"]
    # Only the two allowed keys wrote: one request each; only they touched the anomaly.
    requesters = mongo_db[OPTIMIZATION_REQUESTS].distinct("requested_by")
    assert sorted(requesters) == [f"key-{ADMIN}", f"key-{OPTIMIZE_WRITE}"]
    stored = mongo_db[ANOMALIES].find_one({"_id": ObjectId(anomaly_id)})
    assert stored["status"] == "false_positive"
    assert [h["actor"] for h in stored["history"]] == [f"key-{ALERTS_WRITE}"]


def test_actor_is_the_key_name_whatever_the_body_claims(
    base: str, mongo_db: Database, anomaly_id: str
) -> None:
    raw, _ = create_key(mongo_db, "desk-analyst", [ALERTS_WRITE, OPTIMIZE_WRITE])
    with httpx.Client(base_url=base, timeout=10.0, headers=_auth(raw)) as http:
        body = {"note": "checked", "actor": CLAIMED_ACTOR}
        answer = http.post(f"/alerts/{anomaly_id}/ack", json=body)
        assert answer.status_code == 200
        assert answer.json()["history"][-1]["actor"] == "desk-analyst"
        posted = http.post("/backtests/optimize", json=BODY)
        assert posted.status_code == 202
        smuggled = http.post("/backtests/optimize", json={**BODY, "actor": CLAIMED_ACTOR})
        assert smuggled.status_code == 422
    stored = mongo_db[ANOMALIES].find_one({"_id": ObjectId(anomaly_id)})
    assert [h["actor"] for h in stored["history"]] == ["desk-analyst"]
    assert CLAIMED_ACTOR not in str(stored)
    requests = list(mongo_db[OPTIMIZATION_REQUESTS].find())
    assert [r["requested_by"] for r in requests] == ["desk-analyst"]


def test_revoked_key_is_refused(base: str, mongo_env: Database, capsys) -> None:
    raw, key = create_key(mongo_env, "leaver", [READ])
    with httpx.Client(base_url=base, timeout=10.0, headers=_auth(raw)) as http:
        assert http.get("/alerts").status_code == 200
        assert main(["api-keys", "revoke", "leaver"]) == 0
        assert "revoked" in capsys.readouterr().out
        revoked_at = time.monotonic()
        while (answer := http.get("/alerts")).status_code == 200:
            assert time.monotonic() - revoked_at < 3.0, "revocation not applied within the TTL"
            time.sleep(0.1)
        assert answer.status_code == 401
    with running(create_app(lambda: mongo_env, key_cache_ttl_s=0)) as fresh:
        assert httpx.get(f"{fresh}/alerts", headers=_auth(raw)).status_code == 401
    (stored,) = [k for k in list_keys(mongo_env) if k.key_id == key.key_id]
    assert stored.revoked
    assert stored.last_used_at is not None  # the accepted request was recorded


@pytest.mark.parametrize(
    "host",
    ["evil.example", "127.0.0.1.nip.io", "localhost.evil.example", "10.0.0.5", "[::2]"],
)
def test_foreign_host_header_is_refused(
    base: str, mongo_db: Database, keys: dict[str, str], host: str
) -> None:
    headers = {**_auth(keys[ADMIN]), "Host": host}
    for method, kwargs in (("GET", {}), ("POST", {"json": BODY})):
        path = "/alerts" if method == "GET" else "/backtests/optimize"
        answer = httpx.request(method, base + path, headers=headers, timeout=10.0, **kwargs)
        assert answer.status_code == 400
    assert httpx.get(base + "/healthz", headers={"Host": host}).status_code == 400
    assert mongo_db[OPTIMIZATION_REQUESTS].count_documents({}) == 0
    port = base.rsplit(":", 1)[1]
    for ok in (f"localhost:{port}", f"127.0.0.1:{port}", "LOCALHOST"):
        answer = httpx.get(base + "/alerts", headers={**_auth(keys[READ]), "Host": ok})
        assert answer.status_code == 200, ok


@pytest.mark.parametrize("with_key", [True, False], ids=["with-key", "without-key"])
@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=b"],
)
def test_cross_site_form_posts_are_refused_and_write_nothing(
    base: str,
    mongo_db: Database,
    keys: dict[str, str],
    anomaly_id: str,
    content_type: str,
    with_key: bool,
) -> None:
    headers = {"Content-Type": content_type, "Origin": "https://evil.example"}
    if with_key:
        headers.update(_auth(keys[ADMIN]))
    posts = [
        (f"/alerts/{anomaly_id}/ack", b""),  # a form without fields
        (f"/alerts/{anomaly_id}/resolve", b"note=gone&actor=chief.risk.officer"),
        (f"/alerts/{anomaly_id}/false-positive", json.dumps({"note": "x"}).encode()),
        ("/backtests/optimize", json.dumps(BODY).encode()),
    ]
    with httpx.Client(base_url=base, timeout=10.0) as http:
        for path, content in posts:
            answer = http.post(path, content=content, headers=headers)
            assert answer.status_code == 415, (path, answer.text)
            assert "access-control-allow-origin" not in answer.headers
    stored = mongo_db[ANOMALIES].find_one({"_id": ObjectId(anomaly_id)})
    assert stored["status"] == "open"
    assert "history" not in stored
    assert mongo_db[OPTIMIZATION_REQUESTS].count_documents({}) == 0


def test_quotas_answer_429_with_retry_after_and_write_nothing(
    mongo_db: Database, keys: dict[str, str]
) -> None:
    app = create_app(lambda: mongo_db, max_active_requests=3, max_queued_trials=2_500)
    body = {**BODY, "n_trials": 1_000, "urgent": True}
    with running(app) as url, httpx.Client(base_url=url, timeout=10.0) as http:
        admin = _auth(keys[ADMIN])
        assert http.post("/backtests/optimize", json=body, headers=admin).status_code == 202
        assert http.post("/backtests/optimize", json=body, headers=admin).status_code == 202
        refused = http.post("/backtests/optimize", json=body, headers=admin)  # 3,000 trials
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 0
        small = {**body, "n_trials": 500}
        assert http.post("/backtests/optimize", json=small, headers=admin).status_code == 202
        full = http.post("/backtests/optimize", json={**body, "n_trials": 1}, headers=admin)
        assert full.status_code == 429  # a 4th active request
        assert "retry-after" in full.headers
        assert mongo_db[OPTIMIZATION_REQUESTS].count_documents({}) == 3
        # The quota is per key: another key still gets in.
        other = _auth(keys[OPTIMIZE_WRITE])
        assert http.post("/backtests/optimize", json=body, headers=other).status_code == 202
    assert mongo_db[OPTIMIZATION_REQUESTS].count_documents({"requested_by": "key-admin"}) == 3


def _everything(db: Database) -> str:
    return "\n".join(str(doc) for name in db.list_collection_names() for doc in db[name].find())


def test_cli_api_keys_create_list_revoke(mongo_env: Database, capsys) -> None:
    code = main(
        ["api-keys", "create", "--name", "quant-desk", "--scope", READ, "--scope", "alerts:write"]
    )
    assert code == 0
    out = capsys.readouterr().out
    raw = out.strip().splitlines()[-1]
    assert raw.startswith("qp_") and len(raw) >= 46
    assert "shown only this once" in out
    # Only the hash is stored, nowhere the key (nor its random part).
    dump = _everything(mongo_env)
    assert raw not in dump and raw[3:] not in dump
    (doc,) = mongo_env[API_KEYS].find()
    assert doc["key_hash"] == hashlib.sha256(raw.encode()).hexdigest()
    assert doc["scopes"] == [READ, ALERTS_WRITE]
    assert doc["revoked"] is False
    # The key works against a real server; list never shows it again.
    with running(create_app(lambda: mongo_env, key_cache_ttl_s=0)) as url:
        assert httpx.get(f"{url}/alerts", headers=_auth(raw)).status_code == 200
        assert main(["api-keys", "list"]) == 0
        listing = capsys.readouterr().out
        assert "quant-desk" in listing and "active" in listing and raw not in listing
        assert main(["api-keys", "revoke", doc["_id"]]) == 0  # by id
        assert httpx.get(f"{url}/alerts", headers=_auth(raw)).status_code == 401
    assert main(["api-keys", "list"]) == 0
    assert "revoked" in capsys.readouterr().out
    # A taken name, an unknown scope and an unknown key are refused.
    assert main(["api-keys", "create", "--name", "quant-desk", "--scope", READ]) == 2
    with pytest.raises(SystemExit):
        main(["api-keys", "create", "--name", "x", "--scope", "root"])
    assert main(["api-keys", "revoke", "nobody"]) == 1
    assert mongo_env[API_KEYS].count_documents({}) == 1
    assert raw not in _everything(mongo_env)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "api.example.com", ""])
def test_public_bind_is_refused_without_keys_and_the_flag(
    mongo_env: Database, tmp_path: Path, monkeypatch, host: str
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    port = str(free_port())
    with pytest.raises(SystemExit) as info:
        main(["api", "--host", host, "--port", port])
    message = str(info.value.code)
    assert "--i-know-this-is-public" in message and "authentication is not configured" in message
    with pytest.raises(SystemExit) as info:
        main(["api", "--host", host, "--port", port, "--i-know-this-is-public"])
    assert "authentication is not configured" in str(info.value.code)
    assert mongo_env[API_KEYS].count_documents({}) == 0  # no bootstrap key for a public bind
    create_key(mongo_env, "ops", [ADMIN])
    with pytest.raises(SystemExit) as info:
        main(["api", "--host", host, "--port", port])
    assert "--i-know-this-is-public was not given" in str(info.value.code)
    assert "authentication is not configured" not in str(info.value.code)
    # Keys and the flag: the checks pass (the server itself is not started here).
    assert prepare_api(host, public_ok=True, dagster_home=tmp_path) == 0


def test_check_bind_allows_loopback_only() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]", "LOCALHOST"):
        assert is_loopback(host)
        check_bind(host, auth_configured=False, public_ok=False)
    for host in ("0.0.0.0", "::", "", "10.0.0.1", "localhost.evil.example", "::ffff:8.8.8.8"):
        assert not is_loopback(host)
        with pytest.raises(SystemExit):
            check_bind(host, auth_configured=True, public_ok=False)
        with pytest.raises(SystemExit):
            check_bind(host, auth_configured=False, public_ok=True)
        check_bind(host, auth_configured=True, public_ok=True)


def test_first_start_creates_an_owner_only_admin_key(
    mongo_env: Database, tmp_path: Path, capsys
) -> None:
    assert prepare_api("127.0.0.1", public_ok=False, dagster_home=tmp_path) == 0
    out = capsys.readouterr().out
    path = tmp_path / BOOTSTRAP_KEY_FILE
    assert str(path) in out
    raw = path.read_text().strip()
    assert raw.startswith("qp_")
    assert raw not in out
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    (key,) = list_keys(mongo_env)
    assert (key.name, key.scopes) == (BOOTSTRAP_KEY_NAME, (ADMIN,))
    assert raw not in _everything(mongo_env)
    with running(create_app(lambda: mongo_env)) as url:
        answer = httpx.post(f"{url}/backtests/optimize", json=BODY, headers=_auth(raw))
        assert answer.status_code == 202
    # A second start creates nothing and leaves the file alone.
    assert prepare_api("localhost", public_ok=False, dagster_home=tmp_path) == 0
    assert str(path) not in capsys.readouterr().out
    assert path.read_text().strip() == raw
    assert len(list_keys(mongo_env)) == 1
