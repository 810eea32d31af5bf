"""The console's pages over seeded anomalies: queue, filters, counts, KPIs, the anomaly page.

One seeded database for the module (nothing here changes it): two crypto symbols with scored
bars, a price jump and six anomalies (``_console_data``); the real app through TestClient.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest
from fastapi.testclient import TestClient
from pymongo.database import Database

from quant_pipelines.alerts import enqueue_alerts
from quant_pipelines.api import create_app
from quant_pipelines.api.console._anomaly import load_anomaly
from quant_pipelines.api.console._kpis import kpi_strip
from quant_pipelines.marketdata import load_universe
from quant_pipelines.storage.anomaly_workflow import find_anomaly
from quant_pipelines.storage.api_keys import ALERTS_WRITE, create_key
from quant_pipelines.storage.collections import ALERT_OUTBOX
from quant_pipelines.storage.indexes import ensure_indexes
from quant_pipelines.storage.quality import QUALITY_THRESHOLDS
from quant_pipelines_tests.api_tests._console_data import (
    JUMP,
    JUMP_TS,
    Seeded,
    seed_console_data,
    sign_in,
)
from quant_pipelines_tests.api_tests.conftest import TEST_HOSTS

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def seeded(mongo_client: pymongo.MongoClient) -> Iterator[tuple[Database, Seeded, str]]:
    """The module's database, its anomalies and an ``alerts:write`` key."""
    name = f"qp_test_{uuid.uuid4().hex[:12]}"
    db = mongo_client[name]
    ensure_indexes(db)
    ids = seed_console_data(db, now=NOW)
    key, _ = create_key(db, "jane.doe", [ALERTS_WRITE])
    yield db, ids, key
    mongo_client.drop_database(name)


@pytest.fixture(scope="module")
def analyst(seeded) -> Iterator[TestClient]:
    """A TestClient signed in to the console with the ``alerts:write`` key."""
    db, _, key = seeded
    with TestClient(create_app(lambda: db, allowed_hosts=TEST_HOSTS)) as client:
        assert sign_in(client, key).status_code == 303
        yield client


def _row_ids(html: str) -> list[str]:
    return re.findall(r'<tr class="\w+" data-id="([0-9a-f]+)"', html)


def test_queue_sorted_by_severity_then_age_with_counts(analyst: TestClient, seeded):
    _, ids, _ = seeded
    page = analyst.get("/console/queue")
    assert page.status_code == 200
    # Critical first (the validation failure opened before the jump), then warnings, oldest
    # bar first; resolved and false-positive anomalies have left the queue.
    assert _row_ids(page.text) == [ids.gate, ids.jump, ids.acked, ids.volume]
    assert re.findall(r'class="count (\w+)"[^>]*><span class="n">(\d+)', page.text) == [
        ("critical", "2"),
        ("warning", "2"),
        ("info", "0"),
    ]
    assert "4 awaiting a verdict" in page.text


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"asset_class": "crypto"}, ["jump", "acked", "volume"]),
        ({"asset_class": "crypto", "severity": "critical"}, ["jump"]),
        ({"symbol": "ETHUSD"}, ["acked", "volume"]),
        ({"kind": "volume_burst"}, ["volume"]),
        ({"detector": "rules"}, ["jump"]),
        ({"status": "acknowledged"}, ["acked"]),
        ({"status": "open", "severity": "warning"}, ["volume"]),
        ({"date": "2023-06-12"}, ["gate", "volume"]),
        ({"asset_class": "fx"}, []),
    ],
    ids=["class", "class+severity", "symbol", "kind", "detector", "acked", "open", "date", "fx"],
)
def test_queue_filters(analyst: TestClient, seeded, params: dict[str, str], expected: list[str]):
    _, ids, _ = seeded
    page = analyst.get("/console/queue", params=params)
    assert page.status_code == 200
    assert _row_ids(page.text) == [getattr(ids, role) for role in expected]
    assert "unknown" not in page.text


@pytest.mark.parametrize(
    ("params", "note"),
    [
        ({"severity": "fatal"}, "unknown severity &#39;fatal&#39;: expected one of critical"),
        ({"asset_class": "bonds"}, "unknown asset class &#39;bonds&#39;"),
        ({"symbol": "ZZZ"}, "unknown symbol &#39;ZZZ&#39;"),
        (
            {"kind": "meteor"},
            "unknown kind &#39;meteor&#39;: expected one of price_level, price_spike",
        ),
        ({"detector": "oracle"}, "unknown detector &#39;oracle&#39;"),
        ({"status": "resolved"}, "unknown status &#39;resolved&#39;: expected one of open"),
        ({"date": "2023-13-45"}, "date &#39;2023-13-45&#39; is not a date"),
        ({"date": "yesterday"}, "date &#39;yesterday&#39; is not a date"),
        ({"symbol": "<script>x</script>"}, "unknown symbol &#39;&lt;script&gt;x&lt;/script&gt;"),
    ],
    ids=["severity", "class", "symbol", "kind", "detector", "status", "date", "date-word", "xss"],
)
def test_unknown_filter_values_give_an_empty_queue_with_a_note(
    analyst: TestClient, seeded, params: dict[str, str], note: str
):
    page = analyst.get("/console/queue", params=params)
    assert page.status_code == 200
    assert _row_ids(page.text) == []
    assert note in page.text
    assert "<script>x" not in page.text


def test_kpis_over_the_last_30_days(seeded):
    db, _, _ = seeded
    strip = kpi_strip(db, now=NOW)
    assert len(strip.days) == 30 and strip.days[-1] == NOW.date()
    assert strip.anomalies_per_batch == 4.0 and strip.batches == 1  # warning 3 + critical 1
    assert strip.ttr_median_s == pytest.approx(2 * 86400)  # opened 3 days ago, resolved 1 ago
    assert (strip.fp_rate, strip.closed, strip.resolved) == (0.5, 2, 1)
    assert strip.daily_ttr_h[-2] == pytest.approx(48.0) and strip.daily_fp_rate[-1] == 1.0
    later = kpi_strip(db, now=NOW + dt.timedelta(days=45))  # everything left the window
    assert (later.batches, later.closed, later.fp_rate, later.anomalies_per_batch) == (
        0,
        0,
        None,
        None,
    )


def test_queue_page_shows_the_kpi_strip(analyst: TestClient):
    page = analyst.get("/console/queue").text
    assert page.count('class="sparkline"') == 3
    assert "50.0 %" in page  # false-positive rate
    assert "2.0 d" in page  # median time to resolution


def test_anomaly_window_peers_and_verdicts(seeded):
    db, ids, _ = seeded
    view = load_anomaly(db, load_universe(), find_anomaly(db, ids.jump))
    chart = view.chart
    assert len(chart.dates) == 60
    assert chart.flagged == 44 and chart.dates[44] == JUMP_TS  # 44 before, 15 after
    assert all(a < b for a, b in zip(chart.dates, chart.dates[1:], strict=False))
    assert set(chart.normalised) == {"BTCUSD", "ETHUSD"}
    assert chart.normalised["ETHUSD"][0] == pytest.approx(100.0)
    assert view.moves["BTCUSD"] > JUMP - 0.1 and abs(view.moves["ETHUSD"]) < 0.2
    assert view.rules == ["price_jump"]
    assert view.flags == ["iforest", "price_jump", "prophet_price"]
    assert [s[0] for s in view.scores if s[4]] == ["Isolation Forest", "Prophet distance"]
    assert view.actions == ("ack", "resolve", "false_positive")
    assert view.thresholds["version"].startswith("default")


def test_anomaly_page_renders_chart_scores_rules_and_verdict(analyst: TestClient, seeded):
    _, ids, _ = seeded
    page = analyst.get(f"/console/anomalies/{ids.jump}")
    assert page.status_code == 200
    html = page.text
    svg = html[html.index('<svg xmlns="http://www.w3.org/2000/svg" class="anomaly-chart"') :]
    svg = svg[: svg.index("</svg>")]
    assert "BTCUSD: 60 sessions around the flagged bar" in svg
    assert ">flagged<" in svg and ">2023-06-15<" in svg and ">ETHUSD<" in svg
    assert svg.count("<rect") >= 2 * 60  # candle bodies and volume bars
    assert "warning 0.72" in svg and "critical 0.795" in svg  # the thresholds drawn
    assert "<li>price_jump</li>" in html
    assert "<strong>No</strong>: the move is specific to BTCUSD" in html
    assert 'id="action-resolve"' in html and "Recorded as <strong>jane.doe</strong>" in html
    assert "No verdict yet." in html


def test_acknowledged_anomaly_shows_its_history_and_market_event(analyst: TestClient, seeded):
    _, ids, _ = seeded
    html = analyst.get(f"/console/anomalies/{ids.acked}").text
    assert "<strong>Yes</strong>: the move is shared across the crypto class" in html
    history = html[html.index('id="history"') :]
    assert "jane" in history and "looking" in history and "open → acknowledged" in history
    assert 'id="action-ack"' not in html and 'id="action-resolve"' in html


def test_validation_anomaly_without_bars_and_closed_anomaly(analyst: TestClient, seeded):
    _, ids, _ = seeded
    gate = analyst.get(f"/console/anomalies/{ids.gate}").text
    assert "No bars of AAPL are stored around this time." in gate
    assert "<li>ohlc_inconsistent</li>" in gate and "Not assessed" in gate
    closed = analyst.get(f"/console/anomalies/{ids.resolved}").text
    assert "This anomaly is resolved: no further action." in closed
    assert 'id="verdict"' not in closed


def test_stored_thresholds_replace_the_defaults(seeded):
    db, ids, _ = seeded
    doc = {"version": "weekly-abc123", "iforest_warning": 0.9, "iforest_critical": 0.95}
    doc.update(prophet_price_warning=2.0, prophet_price_critical=3.0)
    doc.update(prophet_volume_warning=1.0, prophet_volume_critical=1.5, saved_at=NOW)
    db[QUALITY_THRESHOLDS].insert_one(doc)
    try:
        view = load_anomaly(db, load_universe(), find_anomaly(db, ids.jump))
    finally:
        db[QUALITY_THRESHOLDS].delete_many({})
    assert view.thresholds["version"] == "weekly-abc123"
    assert view.chart.thresholds["iforest_warning"] == 0.9
    assert view.scores[0][2:4] == ("0.9", "0.95")
    assert [s[4] for s in view.scores] == [True, True]  # the verdicts as scored stay
    gate = load_anomaly(db, load_universe(), find_anomaly(db, ids.gate))  # no scored bar
    assert [s[1] for s in gate.scores] == [None, None] and not any(s[4] for s in gate.scores)


@pytest.mark.parametrize(
    "anomaly_id", ["5f0000000000000000000000", "no-such-id", "$ne", "a" * 80], ids=str.__len__
)
def test_unknown_anomaly_id_is_a_404_page(analyst: TestClient, anomaly_id: str):
    page = analyst.get(f"/console/anomalies/{anomaly_id}")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "No anomaly has the id" in page.text


def test_pages_carry_the_security_headers_and_never_the_key(analyst: TestClient, seeded):
    _, ids, key = seeded
    for path in ("/console/queue", f"/console/anomalies/{ids.jump}", "/console/nope/404"):
        answer = analyst.get(path)
        assert key not in answer.text
        if answer.status_code == 200:
            headers: Any = answer.headers
            assert headers["cache-control"] == "no-store"
            assert "script-src" not in headers["content-security-policy"]  # default-src 'none'
            assert "default-src 'none'" in headers["content-security-policy"]
            assert headers["x-frame-options"] == "DENY"
            assert "<script" not in answer.text and " style=" not in answer.text
    css = analyst.get("/console/static/console.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_the_alert_link_opens_the_anomaly_page(analyst: TestClient, seeded):
    db, ids, _ = seeded
    anomaly = find_anomaly(db, ids.jump)
    enqueue_alerts(db, [anomaly], channels=("slack",), console_url="http://testserver")
    link = db[ALERT_OUTBOX].find_one({"payload.anomaly_id": ids.jump})["payload"]["links"][
        "console"
    ]
    assert link == f"http://testserver/console/anomalies/{ids.jump}"
    page = analyst.get(link)
    assert page.status_code == 200 and "BTCUSD: 60 sessions around the flagged bar" in page.text
