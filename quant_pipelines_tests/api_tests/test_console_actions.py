"""Console sign-in, sessions, CSRF and the analyst actions, against the real app and MongoDB.

Each test gets a fresh database with a few anomalies (no bars: the pages render without
them) and keys per scope; clients keep their cookies like a browser.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from bson import ObjectId
from fastapi.testclient import TestClient
from pymongo.database import Database

from quant_pipelines.api import create_app
from quant_pipelines.api.console import CONSOLE_SESSIONS, SESSION_COOKIE, SIGNIN_CSRF_COOKIE
from quant_pipelines.storage.api_keys import (
    ALERTS_WRITE,
    OPTIMIZE_WRITE,
    READ,
    create_key,
    revoke_key,
)
from quant_pipelines.storage.collections import ANOMALIES
from quant_pipelines_tests.api_tests._console_data import csrf_of, sign_in
from quant_pipelines_tests.api_tests.conftest import TEST_HOSTS

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
ANALYST = "jane.doe"


@pytest.fixture
def keys(mongo_db: Database) -> dict[str, str]:
    """Raw keys: ``write`` (alerts:write, named jane.doe), ``read`` and ``optimize``."""
    return {
        "write": create_key(mongo_db, ANALYST, [ALERTS_WRITE])[0],
        "read": create_key(mongo_db, "viewer", [READ])[0],
        "optimize": create_key(mongo_db, "optimizer", [OPTIMIZE_WRITE])[0],
    }


@pytest.fixture
def anomalies(mongo_db: Database) -> dict[str, str]:
    """Ids by status: ``open``, ``acked`` (acknowledged), ``resolved``."""
    docs = {
        "open": {"symbol": "AAPL", "status": "open"},
        "acked": {"symbol": "MSFT", "status": "acknowledged"},
        "resolved": {"symbol": "SPY", "status": "resolved", "history": [{"action": "resolve"}]},
    }
    for i, doc in enumerate(docs.values()):
        ts = T0 + dt.timedelta(days=i)
        doc.update(ts=ts, detector="statistical", severity="warning", created_at=ts)
        doc.setdefault("history", [])
    return {k: str(mongo_db[ANOMALIES].insert_one(v).inserted_id) for k, v in docs.items()}


@pytest.fixture
def console(mongo_db: Database) -> Iterator[TestClient]:
    """An anonymous browser-like client (no key cache: revocations show at once)."""
    app = create_app(lambda: mongo_db, allowed_hosts=TEST_HOSTS, key_cache_ttl_s=0)
    with TestClient(app) as client:
        yield client


def _doc(db: Database, anomaly_id: str) -> dict[str, Any]:
    return db[ANOMALIES].find_one({"_id": ObjectId(anomaly_id)})


def _post(client: TestClient, path: str, data: dict[str, str], **kwargs: Any):
    return client.post(path, data=data, follow_redirects=False, **kwargs)


def _set_cookie_headers(answer: Any) -> list[str]:
    return answer.headers.get_list("set-cookie")


def test_pages_redirect_to_sign_in_and_back(console: TestClient, keys):
    answer = console.get("/console/anomalies/abc?x=1", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/signin?next=%2Fconsole%2Fanomalies%2Fabc%3Fx%3D1"
    form = console.get(answer.headers["location"])
    assert 'name="next" value="/console/anomalies/abc?x=1"' in form.text
    (cookie,) = _set_cookie_headers(form)
    assert cookie.startswith(f"{SIGNIN_CSRF_COOKIE}=") and "HttpOnly" in cookie
    assert "SameSite=strict" in cookie and "Path=/console" in cookie
    signed = sign_in(console, keys["write"], next_page="/console/anomalies/abc?x=1")
    assert signed.status_code == 303 and signed.headers["location"] == "/console/anomalies/abc?x=1"


def test_sign_in_exchanges_the_key_for_a_server_side_session(console, keys, mongo_db):
    answer = sign_in(console, keys["write"])
    assert answer.status_code == 303 and answer.headers["location"] == "/console/queue"
    session = next(c for c in _set_cookie_headers(answer) if c.startswith(f"{SESSION_COOKIE}="))
    token = session.split(";", 1)[0].split("=", 1)[1]
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/console", "Max-Age=28800"):
        assert attribute in session
    assert keys["write"] not in session and len(token) >= 40
    (stored,) = mongo_db[CONSOLE_SESSIONS].find()
    assert stored["_id"] == hashlib.sha256(token.encode()).hexdigest()  # only the hash
    assert token not in str(stored) and keys["write"] not in str(stored)
    assert stored["name"] == ANALYST and stored["expires_at"] > stored["created_at"]
    ttl = [i for i in mongo_db[CONSOLE_SESSIONS].list_indexes() if "expireAfterSeconds" in i]
    assert ttl and ttl[0]["key"] == {"expires_at": 1}
    page = console.get("/console/queue")
    assert page.status_code == 200 and ANALYST in page.text and keys["write"] not in page.text


@pytest.mark.parametrize(
    ("key", "status", "message"),
    [
        ("qp_not-a-real-key", 401, "Invalid or revoked API key."),
        ("optimize", 403, "neither the read nor the alerts:write scope"),
        ("", 401, "Invalid or revoked API key."),
    ],
    ids=["unknown", "wrong-scope", "empty"],
)
def test_bad_keys_are_refused_and_never_echoed(console, keys, mongo_db, key, status, message):
    raw = keys.get(key, key)
    answer = sign_in(console, raw)
    assert answer.status_code == status
    assert message in answer.text
    assert not raw or raw not in answer.text
    assert SESSION_COOKIE not in console.cookies
    assert mongo_db[CONSOLE_SESSIONS].count_documents({}) == 0


def test_sign_in_needs_its_csrf_token_and_the_same_origin(console, keys, mongo_db):
    token = csrf_of(console.get("/console/signin").text)
    forged = _post(console, "/console/signin", {"api_key": keys["write"]})
    wrong = _post(console, "/console/signin", {"api_key": keys["write"], "csrf_token": "x" * 43})
    cross = _post(
        console,
        "/console/signin",
        {"api_key": keys["write"], "csrf_token": token},
        headers={"Origin": "http://evil.example"},
    )
    assert [forged.status_code, wrong.status_code, cross.status_code] == [403, 403, 403]
    assert "did not come from this site" in cross.text
    assert mongo_db[CONSOLE_SESSIONS].count_documents({}) == 0


def test_expired_session_redirects_to_sign_in(console, keys, mongo_db):
    sign_in(console, keys["write"])
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    mongo_db[CONSOLE_SESSIONS].update_many({}, {"$set": {"expires_at": past}})
    answer = console.get("/console/queue", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/signin?next=%2Fconsole%2Fqueue&expired=1"
    assert any(c.startswith(f'{SESSION_COOKIE}=""') for c in _set_cookie_headers(answer))
    assert mongo_db[CONSOLE_SESSIONS].count_documents({}) == 0
    assert "Your session expired" in console.get(answer.headers["location"]).text


def test_revoking_the_key_ends_its_sessions(console, keys, mongo_db):
    sign_in(console, keys["write"])
    assert console.get("/console/queue", follow_redirects=False).status_code == 200
    revoke_key(mongo_db, ANALYST)
    assert console.get("/console/queue", follow_redirects=False).status_code == 303


def test_sign_out_needs_the_token_then_ends_the_session(console, keys, mongo_db):
    sign_in(console, keys["write"])
    cookie = console.cookies[SESSION_COOKIE]
    refused = _post(console, "/console/signout", {})
    assert refused.status_code == 403 and mongo_db[CONSOLE_SESSIONS].count_documents({}) == 1
    token = csrf_of(console.get("/console/queue").text)
    out = _post(console, "/console/signout", {"csrf_token": token})
    assert out.status_code == 303 and out.headers["location"] == "/console/signin?signed_out=1"
    assert mongo_db[CONSOLE_SESSIONS].count_documents({}) == 0
    console.cookies.set(SESSION_COOKIE, cookie, path="/console")  # a stolen copy replayed
    assert console.get("/console/queue", follow_redirects=False).status_code == 303


def test_a_link_from_another_site_bounces_once_to_pick_up_the_strict_cookie(console):
    answer = console.get(
        "/console/anomalies/abc", headers={"Sec-Fetch-Site": "cross-site"}, follow_redirects=False
    )
    assert answer.status_code == 200
    assert '<meta http-equiv="refresh" content="0; url=/console/anomalies/abc">' in answer.text
    same = console.get(
        "/console/anomalies/abc", headers={"Sec-Fetch-Site": "same-origin"}, follow_redirects=False
    )
    assert same.status_code == 303  # the reload, still without a session: sign in


def _act(client: TestClient, anomaly_id: str, segment: str, note: str = "", **kwargs: Any):
    token = csrf_of(client.get(f"/console/anomalies/{anomaly_id}").text)
    data = {"csrf_token": token, "note": note}
    return _post(client, f"/console/anomalies/{anomaly_id}/{segment}", data, **kwargs)


@pytest.mark.parametrize(
    ("segment", "start", "status"),
    [
        ("ack", "open", "acknowledged"),
        ("resolve", "acked", "resolved"),
        ("false-positive", "open", "false_positive"),
    ],
    ids=["ack", "resolve", "false-positive"],
)
def test_actions_go_through_the_workflow_as_the_signed_in_user(
    console, keys, anomalies, mongo_db, segment, start, status
):
    sign_in(console, keys["write"])
    anomaly_id = anomalies[start]
    answer = _act(console, anomaly_id, segment, note="  checked the tape  ")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith(f"/console/anomalies/{anomaly_id}?done=")
    doc = _doc(mongo_db, anomaly_id)
    assert doc["status"] == status
    assert (
        doc["history"][-1]["actor"] == ANALYST and doc["history"][-1]["note"] == "checked the tape"
    )
    page = console.get(answer.headers["location"])
    assert 'id="status">' + status.replace("_", " ") in page.text
    assert 'role="status" id="message"' in page.text


@pytest.mark.parametrize(
    ("start", "segment", "message"),
    [
        ("resolved", "resolve", "This anomaly is already resolved. Nothing changed."),
        ("resolved", "false-positive", "cannot false_positive anomaly"),
        ("acked", "ack", "This anomaly is already acknowledged. Nothing changed."),
        ("resolved", "ack", "cannot ack anomaly"),
    ],
    ids=["resolve-resolved", "fp-resolved", "ack-acked", "ack-resolved"],
)
def test_forbidden_transitions_show_a_message_and_change_nothing(
    console, keys, anomalies, mongo_db, start, segment, message
):
    sign_in(console, keys["write"])
    before = _doc(mongo_db, anomalies[start])
    answer = _act(console, anomalies[start], segment, note="again")
    assert answer.status_code == 409
    assert message in answer.text and 'role="alert"' in answer.text
    assert _doc(mongo_db, anomalies[start]) == before


def test_posts_without_a_valid_csrf_token_or_from_elsewhere_change_nothing(
    console, keys, anomalies, mongo_db
):
    sign_in(console, keys["write"])
    path = f"/console/anomalies/{anomalies['open']}/resolve"
    before = _doc(mongo_db, anomalies["open"])
    token = csrf_of(console.get("/console/queue").text)
    answers = [
        _post(console, path, {"note": "no token"}),
        _post(console, path, {"csrf_token": "A" * 43}),
        _post(console, path, {"csrf_token": token}, headers={"Origin": "http://evil.example"}),
        _post(console, path, {"csrf_token": token}, headers={"Sec-Fetch-Site": "cross-site"}),
    ]
    assert [a.status_code for a in answers] == [403, 403, 403, 403]
    assert "CSRF" in answers[0].text
    assert _doc(mongo_db, anomalies["open"]) == before
    ok = _post(console, path, {"csrf_token": token}, headers={"Origin": "http://testserver"})
    assert ok.status_code == 303 and _doc(mongo_db, anomalies["open"])["status"] == "resolved"


def test_a_read_key_sees_the_page_but_cannot_act(console, keys, anomalies, mongo_db):
    sign_in(console, keys["read"])
    page = console.get(f"/console/anomalies/{anomalies['open']}")
    assert (
        page.status_code == 200 and "Read-only key" in page.text and 'id="verdict"' not in page.text
    )
    answer = _act(console, anomalies["open"], "resolve")
    assert answer.status_code == 403 and "alerts:write" in answer.text
    assert _doc(mongo_db, anomalies["open"])["status"] == "open"


def test_action_edge_cases(console, keys, anomalies, mongo_db):
    path = f"/console/anomalies/{anomalies['open']}"
    anonymous = _post(console, f"{path}/resolve", {"csrf_token": "x"})
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith(
        "/console/signin"
    )
    sign_in(console, keys["write"])
    token = csrf_of(console.get(path).text)
    assert _post(console, f"{path}/delete", {"csrf_token": token}).status_code == 404
    missing = _post(
        console, "/console/anomalies/5f0000000000000000000000/ack", {"csrf_token": token}
    )
    assert missing.status_code == 404 and "No anomaly has the id" in missing.text
    assert (
        _post(console, f"{path}/ack", {"csrf_token": token, "note": "x" * 2001}).status_code == 400
    )
    assert _doc(mongo_db, anomalies["open"])["status"] == "open"


@pytest.mark.parametrize(
    ("path", "content_type", "status"),
    [
        ("/console/signin", "application/json", 415),
        ("/console/signin", "multipart/form-data; boundary=x", 415),
        ("/console/signin", "text/plain", 415),
        ("/alerts/5f0000000000000000000000/ack", "application/x-www-form-urlencoded", 415),
        ("/backtests/optimize", "application/x-www-form-urlencoded", 415),
    ],
    ids=["console-json", "console-multipart", "console-text", "api-form", "optimize-form"],
)
def test_forms_are_accepted_under_console_only(console, path, content_type, status):
    answer = console.post(path, content=b"a=1", headers={"Content-Type": content_type})
    assert answer.status_code == status
