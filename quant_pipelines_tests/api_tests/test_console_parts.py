"""The console's parts: SVG charts, form parsing and redirects, thresholds, the bar window."""

from __future__ import annotations

import dataclasses
import datetime as dt
import xml.etree.ElementTree as ET

import pytest
from pymongo.database import Database

from quant_pipelines.api.console import _forms
from quant_pipelines.api.console._anomaly import DEFAULT_THRESHOLDS, _window
from quant_pipelines.api.console._charts import ChartData, anomaly_chart, sparkline
from quant_pipelines.api.console._svg import nice_ticks
from quant_pipelines.storage.collections import BARS

D0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _chart(n: int = 60, *, symbol: str = "BTCUSD", flagged: int | None = 44) -> ChartData:
    closes = [100.0 + i for i in range(n)]
    return ChartData(
        symbol=symbol,
        dates=[D0 + dt.timedelta(days=i) for i in range(n)],
        open=[c - 0.5 for c in closes],
        high=[c + 1 for c in closes],
        low=[c - 1 for c in closes],
        close=closes,
        volume=[1000.0] * n,
        flagged=flagged,
        iforest=[0.5] * n,
        prophet=[0.1] * n,
        normalised={symbol: [100.0] * n, "ETHUSD": [100.0 + i / 10 for i in range(n)]},
        thresholds=DEFAULT_THRESHOLDS,
    )


def test_the_chart_is_well_formed_svg_with_the_flagged_bar_marked():
    svg = anomaly_chart(_chart())
    root = ET.fromstring(svg)  # parses as XML: every text escaped, every tag closed
    assert root.tag.endswith("svg") and root.get("class") == "anomaly-chart"
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "flagged" in texts and "2024-02-14" in texts  # the flagged date is labelled
    assert "style=" not in svg and "<script" not in svg


def test_the_chart_escapes_hostile_names_and_survives_missing_data():
    data = dataclasses.replace(
        _chart(symbol='<img src=x onerror="alert(1)">'),
        close=[None] * 60,
        high=[float("nan")] * 60,
        volume=[None] * 60,
        iforest=[None] * 60,
    )
    svg = anomaly_chart(data)
    ET.fromstring(svg)
    assert "<img" not in svg and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in svg
    for empty in (
        dataclasses.replace(_chart(0, flagged=None), normalised={}),
        _chart(1, flagged=0),
    ):
        ET.fromstring(anomaly_chart(empty))


@pytest.mark.parametrize(
    "values", [[], [None, None], [1.0], [0.0, 0.0], [1.0, None, 3.0, float("inf")]], ids=str
)
def test_sparklines_draw_whatever_the_series(values):
    for bars in (False, True):
        root = ET.fromstring(sparkline(values, title="t <&>", bars=bars))
        assert root.get("class") == "sparkline"


def test_nice_ticks_are_round_and_inside_the_range():
    assert nice_ticks(0.0, 1.0, 4) == [0.0, 0.5, 1.0]
    assert nice_ticks(61_234.0, 104_876.0, 3) == [80_000.0, 100_000.0]
    assert nice_ticks(0.93, 1.07, 3) == pytest.approx([0.95, 1.0, 1.05])
    assert nice_ticks(1.0, 1.0) == [1.0]


def test_default_thresholds_match_the_quality_package():
    from quant_pipelines.quality.severity import DEFAULT_THRESHOLDS as QUALITY_DEFAULTS

    expected = {k: v for k, v in QUALITY_DEFAULTS.to_dict().items() if k in DEFAULT_THRESHOLDS}
    assert expected == DEFAULT_THRESHOLDS


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"note=%FF", "not valid UTF-8"),
        (b"\xff=1", "not valid UTF-8"),
        (b"&".join(b"f%d=1" % i for i in range(9)), "more than 8 fields"),
        (b"note=" + b"x" * 2001, "longer than 2000"),
    ],
    ids=["percent", "raw", "fields", "long"],
)
def test_unreadable_forms_are_refused(body: bytes, error: str):
    with pytest.raises(_forms.FormError, match=error):
        _forms.parse_form(body)


def test_forms_parse_first_values_and_blanks():
    form = _forms.parse_form(b"note=&csrf_token=a%2Bb&note=second&x=%E2%82%AC")
    assert form == {"note": "", "csrf_token": "a+b", "x": "€"}
    assert _forms.tokens_match("abc", "abc") and not _forms.tokens_match("abc", "abd")
    assert not _forms.tokens_match("", "") and not _forms.tokens_match(None, "x")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/console/anomalies/1?x=2", "/console/anomalies/1?x=2"),
        ("https://evil.example/console/", "/console/queue"),
        ("//evil.example/console/", "/console/queue"),
        ("/console//evil.example", "/console/queue"),
        ("/console/../docs", "/console/queue"),
        ("/console/\\evil", "/console/queue"),
        ("/console/\nSet-Cookie:x", "/console/queue"),
        ("/docs", "/console/queue"),
        (None, "/console/queue"),
    ],
    ids=[
        "ok",
        "absolute",
        "scheme-relative",
        "double-slash",
        "dotdot",
        "backslash",
        "crlf",
        "outside",
        "none",
    ],
)
def test_redirects_after_sign_in_stay_inside_the_console(target, expected):
    assert _forms.safe_next(target, "/console/queue") == expected


def _bars(db: Database, days: int) -> None:
    db[BARS].insert_many(
        [
            {
                "symbol": "BTCUSD",
                "ts": D0 + dt.timedelta(days=i),
                "open": 1.0,
                "high": 1.0,
                "low": 1.0,
                "close": 1.0,
                "volume": 1.0,
                "valid": True,
            }
            for i in range(days)
        ]
    )


@pytest.mark.parametrize(
    ("flagged_day", "before", "after"),
    [(100, 44, 16), (0, 0, 60), (5, 5, 55), (199, 59, 1), (190, 50, 10)],
    ids=["middle", "first", "early", "last", "late"],
)
def test_the_window_is_60_sessions_at_most_15_after_the_flagged_bar(
    mongo_db: Database, flagged_day: int, before: int, after: int
):
    _bars(mongo_db, 200)
    ts = D0 + dt.timedelta(days=flagged_day)
    window = _window(mongo_db, "BTCUSD", ts, 60, 1.0)
    stamps = [b["ts"] for b in window]
    assert len(stamps) == 60 and stamps == sorted(stamps)
    assert sum(s < ts for s in stamps) == before and sum(s >= ts for s in stamps) == after
    assert ts in stamps


def test_the_window_of_a_short_history(mongo_db: Database):
    _bars(mongo_db, 10)
    window = _window(mongo_db, "BTCUSD", D0 + dt.timedelta(days=3), 60, 1.5)
    assert len(window) == 10
    assert _window(mongo_db, "ETHUSD", D0, 60, 1.0) == []
