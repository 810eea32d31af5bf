"""Trading calendars: which sessions exist and when each bar starts.

Asset classes map to ``exchange_calendars`` names: equity → ``XNYS``, fx → ``24/5``,
crypto → ``24/7``. Calendars are built once (cached) over :data:`CALENDAR_START` ..
:data:`CALENDAR_END`; dates outside that span are clipped.

Timestamp convention: a bar's ``ts`` is the START of its interval in UTC. Daily bars (``"1D"``)
sit at the session open (XNYS 2024-01-02 → 14:30 UTC; 24/5 and 24/7 → 00:00 UTC of the session
date). Intraday frequencies give ``open, open + freq, ...`` strictly before the session close.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import warnings
from collections.abc import Iterator
from functools import lru_cache
from typing import TypeAlias

import exchange_calendars as xcals
import numpy as np
import pandas as pd

ASSET_CLASS_CALENDARS: dict[str, str] = {"equity": "XNYS", "fx": "24/5", "crypto": "24/7"}
"""Calendar name of each asset class."""

CALENDAR_START = pd.Timestamp("1990-01-01")
"""First date covered by the cached calendars."""

CALENDAR_END = pd.Timestamp("2035-12-31")
"""Last date covered by the cached calendars."""

CalendarLike: TypeAlias = str | xcals.ExchangeCalendar
DateLike: TypeAlias = str | dt.date | pd.Timestamp


@contextlib.contextmanager
def _quiet_xcals() -> Iterator[None]:
    # exchange_calendars 4.13 uses a pandas-3.1-deprecated ``.values`` accessor internally; the
    # warning is not actionable here and would otherwise land in every run's logs.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*returning an ndarray that drops timezone")
        yield


@lru_cache(maxsize=32)
def _build_calendar(name: str) -> xcals.ExchangeCalendar:
    with _quiet_xcals():
        return xcals.get_calendar(name, start=CALENDAR_START, end=CALENDAR_END)


def get_calendar(name_or_asset_class: CalendarLike) -> xcals.ExchangeCalendar:
    """Return the (cached) calendar for an asset class or an ``exchange_calendars`` name.

    Args:
        name_or_asset_class: ``"equity"``, ``"fx"``, ``"crypto"``, a calendar name such as
            ``"XNYS"`` or ``"24/7"``, or a calendar instance (returned unchanged).

    Returns:
        The calendar, covering :data:`CALENDAR_START` .. :data:`CALENDAR_END`.

    Raises:
        ValueError: If the name is neither a known asset class nor a calendar name.
    """
    if isinstance(name_or_asset_class, xcals.ExchangeCalendar):
        return name_or_asset_class
    key = str(name_or_asset_class).strip()
    name = ASSET_CLASS_CALENDARS.get(key.lower(), key)
    try:
        return _build_calendar(name)
    except xcals.errors.InvalidCalendarName as exc:
        raise ValueError(
            f"unknown calendar or asset class {name_or_asset_class!r}; asset classes are "
            f"{sorted(ASSET_CLASS_CALENDARS)}, or use an exchange_calendars name like 'XNYS'"
        ) from exc


def parse_freq(freq: str) -> pd.Timedelta:
    """Parse a bar frequency such as ``"1D"``, ``"1h"`` or ``"30min"``.

    Args:
        freq: A pandas timedelta string; one day or less.

    Returns:
        The bar length. ``pd.Timedelta("1D")`` means one bar per session.

    Raises:
        ValueError: If the string is not a positive duration of at most one day.
    """
    try:
        delta = pd.Timedelta(freq)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid bar frequency {freq!r}; use e.g. '1D', '1h', '30min'") from exc
    if delta <= pd.Timedelta(0) or delta > pd.Timedelta("1D"):
        raise ValueError(f"bar frequency {freq!r} must be positive and at most one day")
    return delta


def as_date(value: DateLike) -> pd.Timestamp:
    """Tz-naive midnight of a date (tz-aware values are taken at their UTC date).

    Args:
        value: A date, date string or timestamp.

    Returns:
        The date as a tz-naive ``ns`` timestamp at midnight.
    """
    ts = pd.Timestamp(value)
    if ts.tz is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.normalize().as_unit("ns")


def sessions(calendar: CalendarLike, start: DateLike, end: DateLike) -> pd.DatetimeIndex:
    """Session labels between two dates, inclusive.

    Args:
        calendar: Calendar, calendar name or asset class.
        start: First date (inclusive); clipped to the calendar's first session.
        end: Last date (inclusive); clipped to the calendar's last session.

    Returns:
        Tz-naive midnight session labels, as ``exchange_calendars`` returns them (may be empty).
    """
    cal = get_calendar(calendar)
    lo = max(as_date(start), cal.first_session)
    hi = min(as_date(end), cal.last_session)
    if lo > hi:
        return pd.DatetimeIndex([], dtype="datetime64[ns]")
    return pd.DatetimeIndex(cal.sessions_in_range(lo, hi), freq=None)


def session_bounds(
    calendar: CalendarLike, labels: pd.DatetimeIndex
) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex]:
    """Open and close (UTC) of each session label.

    Args:
        calendar: Calendar, calendar name or asset class.
        labels: Session labels as returned by :func:`sessions`.

    Returns:
        ``(opens, closes)`` as UTC DatetimeIndexes aligned with ``labels``.
    """
    cal = get_calendar(calendar)
    labels = pd.DatetimeIndex(labels).as_unit("ns")
    opens = pd.DatetimeIndex(cal.opens.reindex(labels)).as_unit("ns").rename(None)
    closes = pd.DatetimeIndex(cal.closes.reindex(labels)).as_unit("ns").rename(None)
    return opens, closes


def bar_times(
    calendar: CalendarLike, start: DateLike, end: DateLike, *, freq: str = "1D"
) -> pd.DatetimeIndex:
    """Expected bar timestamps for the sessions whose label lies in ``[start, end]``.

    Args:
        calendar: Calendar, calendar name or asset class.
        start: First session date (inclusive).
        end: Last session date (inclusive).
        freq: ``"1D"`` for one bar per session at its open, or an intraday frequency such as
            ``"1h"``: bars at ``open, open + freq, ...`` strictly before the session close
            (a session break, if any, is skipped).

    Returns:
        Sorted UTC DatetimeIndex named ``ts``.
    """
    step = parse_freq(freq)
    labels = sessions(calendar, start, end)
    values, _ = bar_layout(calendar, labels, step)
    return pd.DatetimeIndex(values.astype("datetime64[ns]"), name="ts").tz_localize("UTC")


def bar_layout(
    calendar: CalendarLike, labels: pd.DatetimeIndex, step: pd.Timedelta
) -> tuple[np.ndarray, np.ndarray]:
    """Bar start times of the given sessions and the session each bar belongs to.

    Args:
        calendar: Calendar, calendar name or asset class.
        labels: Session labels as returned by :func:`sessions`.
        step: Bar length from :func:`parse_freq`; one day means one bar per session.

    Returns:
        ``(ts_ns, session_pos)``: UTC bar starts as int64 nanoseconds, and for each bar the
        position of its session in ``labels``.
    """
    opens, closes = session_bounds(calendar, labels)
    open_ns = opens.asi8
    if step >= pd.Timedelta("1D"):
        return open_ns.copy(), np.arange(len(labels))
    step_ns = step.value
    counts = -((open_ns - closes.asi8) // step_ns)  # ceil((close - open) / step)
    session_pos = np.repeat(np.arange(len(labels)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    values = open_ns[session_pos] + offsets * step_ns
    cal = get_calendar(calendar)
    if cal.has_break:
        b_start = pd.DatetimeIndex(cal.break_starts.reindex(labels)).as_unit("ns").asi8
        b_end = pd.DatetimeIndex(cal.break_ends.reindex(labels)).as_unit("ns").asi8
        b_start, b_end = b_start[session_pos], b_end[session_pos]
        keep = ~((values >= b_start) & (values < b_end))
        values, session_pos = values[keep], session_pos[keep]
    return values, session_pos


def non_session_weekdays(calendar: CalendarLike, start: DateLike, end: DateLike) -> list[str]:
    """Weekdays in ``[start, end]`` that are not sessions (holidays).

    Used to exclude holidays from Dagster daily partitions.

    Args:
        calendar: Calendar, calendar name or asset class.
        start: First date (inclusive).
        end: Last date (inclusive).

    Returns:
        Sorted ``"YYYY-MM-DD"`` strings.
    """
    days = pd.bdate_range(as_date(start), as_date(end))
    open_days = sessions(calendar, start, end)
    return [d.strftime("%Y-%m-%d") for d in days[~days.isin(open_days)]]


def _to_utc(ts: DateLike) -> pd.Timestamp:
    stamp = pd.Timestamp(ts)
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def is_session_open(calendar: CalendarLike, ts: DateLike) -> bool:
    """Whether the market is open at an instant.

    Args:
        calendar: Calendar, calendar name or asset class.
        ts: The instant; naive values are read as UTC.

    Returns:
        True when ``ts`` falls in a session (open inclusive, close exclusive, breaks closed).

    Raises:
        ValueError: If ``ts`` is outside the calendar's span.
    """
    cal = get_calendar(calendar)
    try:
        with _quiet_xcals():
            return bool(cal.is_open_on_minute(_to_utc(ts)))
    except xcals.errors.MinuteOutOfBounds as exc:
        raise ValueError(str(exc)) from exc


def next_session_open(calendar: CalendarLike, ts: DateLike) -> pd.Timestamp:
    """The first session open strictly after ``ts``.

    Args:
        calendar: Calendar, calendar name or asset class.
        ts: The instant; naive values are read as UTC.

    Returns:
        A UTC timestamp.

    Raises:
        ValueError: If ``ts`` is outside the calendar's span.
    """
    cal = get_calendar(calendar)
    try:
        with _quiet_xcals():
            return pd.Timestamp(cal.next_open(_to_utc(ts))).tz_convert("UTC")
    except xcals.errors.MinuteOutOfBounds as exc:
        raise ValueError(str(exc)) from exc


def next_session_close(calendar: CalendarLike, ts: DateLike) -> pd.Timestamp:
    """The first session close strictly after ``ts``.

    During a session this is the close of that session.

    Args:
        calendar: Calendar, calendar name or asset class.
        ts: The instant; naive values are read as UTC.

    Returns:
        A UTC timestamp.

    Raises:
        ValueError: If ``ts`` is outside the calendar's span.
    """
    cal = get_calendar(calendar)
    try:
        with _quiet_xcals():
            return pd.Timestamp(cal.next_close(_to_utc(ts))).tz_convert("UTC")
    except xcals.errors.MinuteOutOfBounds as exc:
        raise ValueError(str(exc)) from exc
