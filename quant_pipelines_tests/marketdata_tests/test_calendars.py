"""Calendars: sessions, expected bar times, holidays and open/close instants."""

from __future__ import annotations

import pandas as pd
import pytest

from quant_pipelines.marketdata import (
    bar_times,
    get_calendar,
    is_session_open,
    next_session_close,
    next_session_open,
    non_session_weekdays,
    sessions,
)


@pytest.mark.parametrize(
    ("key", "name"),
    [("equity", "XNYS"), ("fx", "24/5"), ("crypto", "24/7"), ("XNYS", "XNYS"), ("24/7", "24/7")],
)
def test_get_calendar_maps_asset_classes_and_is_cached(key: str, name: str) -> None:
    cal = get_calendar(key)
    assert cal.name == name
    assert cal is get_calendar(key)
    assert cal.first_session <= pd.Timestamp("1990-01-02")


def test_get_calendar_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="asset classes are"):
        get_calendar("bonds")


def test_calendar_spans_more_than_5000_daily_sessions() -> None:
    assert len(sessions("equity", "1990-01-01", "2024-12-31")) > 5_000


@pytest.mark.parametrize(
    ("calendar", "first_ts"),
    [
        ("XNYS", "2024-01-02 14:30"),
        ("24/5", "2024-01-02 00:00"),
        ("24/7", "2024-01-02 00:00"),
    ],
)
def test_daily_bar_times_sit_at_the_session_open(calendar: str, first_ts: str) -> None:
    times = bar_times(calendar, "2024-01-02", "2024-01-02")
    assert list(times) == [pd.Timestamp(first_ts, tz="UTC")]
    assert times.name == "ts"


@pytest.mark.parametrize(
    ("calendar", "day", "open_"),
    [("equity", "2024-07-04", False), ("fx", "2024-07-06", False), ("crypto", "2024-07-06", True)],
)
def test_holidays_and_weekends(calendar: str, day: str, open_: bool) -> None:
    assert (len(bar_times(calendar, day, day)) == 1) is open_


def test_weekly_session_counts() -> None:
    week = ("2024-07-01", "2024-07-07")  # Monday .. Sunday, 4 July a Thursday
    assert len(sessions("equity", *week)) == 4
    assert len(sessions("fx", *week)) == 5
    assert len(sessions("crypto", *week)) == 7
    assert sessions("equity", *week).tz is None


@pytest.mark.parametrize(
    ("calendar", "day", "freq", "expected"),
    [
        ("XNYS", "2024-01-02", "1h", 7),  # 14:30 .. 20:30, the last one a partial hour
        ("XNYS", "2024-01-02", "30min", 13),
        ("XNYS", "2024-07-03", "1h", 4),  # early close at 17:00 UTC
        ("24/7", "2024-01-06", "1h", 24),
        ("24/5", "2024-01-02", "4h", 6),
    ],
)
def test_intraday_bar_times(calendar: str, day: str, freq: str, expected: int) -> None:
    times = bar_times(calendar, day, day, freq=freq)
    assert len(times) == expected
    cal = get_calendar(calendar)
    close = cal.session_close(pd.Timestamp(day))
    assert times[0] == cal.session_open(pd.Timestamp(day))
    assert (times < close).all()
    assert (times.to_series().diff().dropna() == pd.Timedelta(freq)).all()


def test_bar_times_rejects_a_bad_frequency() -> None:
    with pytest.raises(ValueError, match="frequency"):
        bar_times("XNYS", "2024-01-02", "2024-01-03", freq="2D")


def test_non_session_weekdays_lists_xnys_holidays() -> None:
    holidays = non_session_weekdays("equity", "2024-01-01", "2024-12-31")
    assert holidays == [
        "2024-01-01",
        "2024-01-15",
        "2024-02-19",
        "2024-03-29",
        "2024-05-27",
        "2024-06-19",
        "2024-07-04",
        "2024-09-02",
        "2024-11-28",
        "2024-12-25",
    ]
    assert non_session_weekdays("crypto", "2024-01-01", "2024-12-31") == []


@pytest.mark.parametrize(
    ("calendar", "ts", "expected"),
    [
        ("XNYS", "2024-01-02 14:30", True),
        ("XNYS", "2024-01-02 14:29:59", False),
        ("XNYS", "2024-01-02 20:59:59", True),
        ("XNYS", "2024-01-02 21:00", False),
        ("XNYS", "2024-07-04 15:00", False),
        ("24/7", "2024-07-06 03:00", True),
        ("24/5", "2024-07-06 03:00", False),
    ],
)
def test_is_session_open(calendar: str, ts: str, expected: bool) -> None:
    assert is_session_open(calendar, pd.Timestamp(ts, tz="UTC")) is expected


def test_next_open_and_close() -> None:
    during = pd.Timestamp("2024-07-03 10:00", tz="America/New_York")
    assert next_session_close("XNYS", during) == pd.Timestamp("2024-07-03 17:00", tz="UTC")
    assert next_session_open("XNYS", during) == pd.Timestamp("2024-07-05 13:30", tz="UTC")
    assert next_session_open("XNYS", "2024-07-05 13:00") == pd.Timestamp(
        "2024-07-05 13:30", tz="UTC"
    )


def test_out_of_span_instants_raise_value_error() -> None:
    with pytest.raises(ValueError, match="XNYS"):
        is_session_open("XNYS", "2050-01-03 15:00")
