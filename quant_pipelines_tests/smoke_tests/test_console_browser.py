"""The analyst console in Debian Chromium: sign in, filter, open, resolve, sign out.

A real API server (``quant_pipelines.api.serve`` on a free loopback port) over the session's
embedded MongoDB, driven by playwright. Screenshots of the queue and of an anomaly go to
``docs/img/console_*.png`` when ``QP_WRITE_SCREENSHOTS=1``, else to the test's tmp folder.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from bson import ObjectId
from pymongo.database import Database

from quant_pipelines.api.server import serve
from quant_pipelines.settings import Settings
from quant_pipelines.storage.api_keys import ALERTS_WRITE, READ, create_key
from quant_pipelines.storage.collections import ANOMALIES
from quant_pipelines.storage.embedded import free_port
from quant_pipelines_tests.api_tests._console_data import Seeded, seed_console_data, seed_history
from quant_pipelines_tests.smoke_tests.conftest import SCREENSHOTS, wait_for_http

pytestmark = pytest.mark.slow

ANALYST, VIEWER = "jane.doe", "viewer"


@dataclass(frozen=True)
class ConsoleServer:
    """The running server, its keys and the seeded anomalies."""

    base: str
    keys: dict[str, str]
    ids: Seeded
    db: Database


@pytest.fixture
def console_server(mongo_uri: str, db_name: str, mongo_db: Database) -> Iterator[ConsoleServer]:
    """``serve()`` in a thread over the test database, with seeded anomalies and two keys."""
    now = dt.datetime.now(dt.UTC)
    ids = seed_console_data(mongo_db, now=now)
    seed_history(mongo_db, now=now)  # a month of verdicts behind the KPI strip
    keys = {
        ANALYST: create_key(mongo_db, ANALYST, [ALERTS_WRITE])[0],
        VIEWER: create_key(mongo_db, VIEWER, [READ])[0],
    }
    port, stop = free_port(), threading.Event()
    settings = Settings(mongodb_uri=mongo_uri, mongodb_db=db_name)
    thread = threading.Thread(
        target=serve,
        kwargs={"port": port, "settings": settings, "log_level": "warning", "stop": stop},
        daemon=True,
    )
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/healthz", timeout_s=30)
        yield ConsoleServer(base, keys, ids, mongo_db)
    finally:
        stop.set()
        thread.join(timeout=15)


def _shots(tmp_path: Path) -> Path:
    return SCREENSHOTS if os.environ.get("QP_WRITE_SCREENSHOTS") == "1" else tmp_path


def _sign_in(page, base: str, key: str) -> None:
    page.goto(f"{base}/console/queue")
    page.wait_for_url("**/console/signin?next=*")
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/queue")


def _status(db: Database, anomaly_id: str) -> str:
    return db[ANOMALIES].find_one({"_id": ObjectId(anomaly_id)})["status"]


def test_analyst_triages_an_alert(console_server: ConsoleServer, chromium_context, tmp_path):
    srv, shots = console_server, _shots(tmp_path)
    page = chromium_context.new_page()
    page.set_default_timeout(30_000)

    _sign_in(page, srv.base, srv.keys[ANALYST])
    assert page.locator(".who .user").inner_text() == ANALYST
    rows = page.locator("#queue tbody tr")
    assert rows.count() == 4  # open and acknowledged only: 2 closed ones are not in the queue
    assert rows.first.get_attribute("data-id") == srv.ids.gate  # critical, then oldest
    assert page.locator(".count.critical .n").inner_text() == "2"
    page.screenshot(path=str(shots / "console_queue.png"), full_page=True)

    page.select_option("#filter-asset_class", "crypto")
    page.select_option("#filter-severity", "critical")
    page.click("#apply-filters")
    page.wait_for_url("**/console/queue?*asset_class=crypto*")
    assert [r.get_attribute("data-id") for r in rows.all()] == [srv.ids.jump]

    page.click(f"tr[data-id='{srv.ids.jump}'] a.symbol")
    page.wait_for_url(f"**/console/anomalies/{srv.ids.jump}")
    chart = page.locator("svg.anomaly-chart")
    chart.wait_for()
    assert chart.bounding_box()["height"] > 300
    assert chart.locator("text", has_text="flagged").count() == 1
    assert chart.locator("text", has_text="ETHUSD").count() == 1  # the class peer, normalised
    assert page.locator("#rules li").all_inner_texts() == ["price_jump"]
    assert page.locator("#status").inner_text() == "open"
    page.screenshot(path=str(shots / "console_anomaly.png"), full_page=True)

    page.fill("#note", "exchange outage, bad print")
    page.click("#action-resolve")
    page.wait_for_url(f"**/console/anomalies/{srv.ids.jump}?done=resolve")
    assert page.locator("#status").inner_text() == "resolved"
    assert page.locator("#message").inner_text() == "Resolved."
    last = page.locator("#history tbody tr").last.inner_text()
    assert ANALYST in last and "exchange outage, bad print" in last
    assert _status(srv.db, srv.ids.jump) == "resolved"
    assert page.locator("#verdict").count() == 0  # a resolved anomaly offers no action

    # A form post carrying the session cookie but no CSRF token changes nothing.
    refused = page.request.post(
        f"{srv.base}/console/anomalies/{srv.ids.volume}/ack", form={"note": "no token"}
    )
    assert refused.status == 403 and "CSRF" in refused.text()
    assert _status(srv.db, srv.ids.volume) == "open"

    page.click("a.brand")
    page.wait_for_url("**/console/queue")
    assert page.locator(f"tr[data-id='{srv.ids.jump}']").count() == 0
    assert page.locator("#queue tbody tr").count() == 3

    page.click("#signout")
    page.wait_for_url("**/console/signin?signed_out=1")
    page.goto(f"{srv.base}/console/anomalies/{srv.ids.volume}")
    page.wait_for_url("**/console/signin?next=*")


def test_read_key_views_but_cannot_act(console_server: ConsoleServer, chromium_context):
    srv = console_server
    page = chromium_context.new_page()
    page.set_default_timeout(30_000)
    _sign_in(page, srv.base, srv.keys[VIEWER])
    page.goto(f"{srv.base}/console/anomalies/{srv.ids.volume}")
    page.locator("svg.anomaly-chart").wait_for()
    assert page.locator("#verdict").count() == 0
    assert "Read-only key" in page.locator(".actions").inner_text()
    token = page.locator("form[action='/console/signout'] input[name=csrf_token]")
    refused = page.request.post(
        f"{srv.base}/console/anomalies/{srv.ids.volume}/resolve",
        form={"csrf_token": token.get_attribute("value"), "note": "sneaky"},
    )
    assert refused.status == 403 and "alerts:write" in refused.text()
    assert _status(srv.db, srv.ids.volume) == "open"
    # The bearer API refuses the same key the same way: the console adds no privilege.
    answer = httpx.post(
        f"{srv.base}/alerts/{srv.ids.volume}/resolve",
        headers={"Authorization": f"Bearer {srv.keys[VIEWER]}"},
    )
    assert answer.status_code == 403
