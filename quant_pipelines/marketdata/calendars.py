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

from quant_pipelines._utils.time import utc_timestamp

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
            return bool(cal.is_open_on_minute(utc_timestamp(ts)))
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
            return pd.Timestamp(cal.next_open(utc_timestamp(ts))).tz_convert("UTC")
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
            return pd.Timestamp(cal.next_close(utc_timestamp(ts))).tz_convert("UTC")
    except xcals.errors.MinuteOutOfBounds as exc:
        raise ValueError(str(exc)) from exc


@lru_cache(maxsize=32)
def _session_table(cal: xcals.ExchangeCalendar) -> tuple[np.ndarray, ...]:
    """Labels, opens, closes, break starts (-1: none), lengths (int64 ns) and regular length."""
    labels = pd.DatetimeIndex(cal.sessions).as_unit("ns")
    opens, closes = session_bounds(cal, labels)
    b_start_ns = b_end_ns = np.full(len(labels), -1, dtype=np.int64)
    if cal.has_break:
        b_start = pd.DatetimeIndex(cal.break_starts.reindex(labels)).as_unit("ns")
        b_end = pd.DatetimeIndex(cal.break_ends.reindex(labels)).as_unit("ns")
        none = b_start.isna() | b_end.isna()
        b_start_ns, b_end_ns = np.where(none, -1, b_start.asi8), np.where(none, -1, b_end.asi8)
    length = closes.asi8 - opens.asi8 - np.where(b_start_ns >= 0, b_end_ns - b_start_ns, 0)
    values, counts = np.unique(length, return_counts=True)
    regular = values[np.argmax(counts)]  # the most common session length
    return labels.asi8, opens.asi8, closes.asi8, b_start_ns, length, np.array([regular])


def bar_session_positions(
    calendar: CalendarLike, index: pd.DatetimeIndex, *, freq: str = "1D"
) -> np.ndarray:
    """Position (among all the calendar's sessions) of the session each bar belongs to.

    A daily bar belongs to the session whose open it sits at, or else to the session labelled
    with its UTC date (vendors often stamp daily bars at midnight of the session date). An
    intraday bar belongs to the session open at its start (``open <= ts < close``).

    Args:
        calendar: Calendar, calendar name or asset class.
        index: UTC bar timestamps (any order).
        freq: Bar frequency.

    Returns:
        int64 positions, consecutive sessions differing by 1.

    Raises:
        ValueError: If a bar lies in no session of the calendar; the message names the
            calendar and the first such timestamps.
    """
    cal = get_calendar(calendar)
    labels, opens, closes, *_ = _session_table(cal)
    stamps = pd.DatetimeIndex(index).tz_convert("UTC").as_unit("ns").asi8
    if parse_freq(freq) >= pd.Timedelta("1D"):
        at = np.clip(np.searchsorted(opens, stamps), 0, len(opens) - 1)
        by_open = opens[at] == stamps
        day = stamps - stamps % (86_400 * 10**9)
        at_day = np.clip(np.searchsorted(labels, day), 0, len(labels) - 1)
        pos = np.where(by_open, at, at_day)
        ok = by_open | (labels[at_day] == day)
    else:
        pos = np.searchsorted(opens, stamps, side="right") - 1
        ok = (pos >= 0) & (stamps < closes[np.maximum(pos, 0)])
    if not ok.all():
        bad = pd.DatetimeIndex(stamps[~ok], tz="UTC")
        shown = ", ".join(str(ts) for ts in bad[:3])
        raise ValueError(
            f"{len(bad)} bar(s) lie outside the sessions of calendar {cal.name!r} "
            f"(e.g. {shown}; weekends, holidays or outside {CALENDAR_START.date()}.."
            f"{CALENDAR_END.date()})"
        )
    return pos.astype(np.int64)


def session_lengths(
    calendar: CalendarLike, index: pd.DatetimeIndex, *, freq: str = "1D"
) -> np.ndarray:
    """Hours of trading each bar covers (early closes and late opens included).

    Daily bars cover their session (close minus open, minus a lunch break); an intraday bar
    covers the part of ``[ts, ts + freq)`` before its session's close or break.

    Args:
        calendar: Calendar, calendar name or asset class (24/7 and 24/5 sessions last 24 h).
        index: UTC bar timestamps.
        freq: Bar frequency.

    Returns:
        float64 hours per bar.

    Raises:
        ValueError: If a bar lies in no session (see :func:`bar_session_positions`).
    """
    cal = get_calendar(calendar)
    _, _, closes, b_start, length, _ = _session_table(cal)
    pos = bar_session_positions(cal, index, freq=freq)
    step = parse_freq(freq).value
    if step >= pd.Timedelta("1D").value:
        return length[pos] / 3.6e12
    stamps = pd.DatetimeIndex(index).tz_convert("UTC").as_unit("ns").asi8
    end = np.minimum(stamps + step, closes[pos])
    brk = b_start[pos]
    end = np.where((brk >= 0) & (stamps < brk), np.minimum(end, brk), end)
    return np.maximum(end - stamps, 0) / 3.6e12


def session_fractions(
    calendar: CalendarLike, index: pd.DatetimeIndex, *, freq: str = "1D"
) -> np.ndarray:
    """Each bar's trading time as a fraction of a regular bar of the calendar.

    Daily bars: session length over the calendar's regular (most common) session length, so
    an XNYS early close (13:00) is 3.5 / 6.5 = 0.54. Intraday bars: the covered part of the
    bar over ``freq`` (the last bar before an early close or a break may be shorter).

    Args:
        calendar: Calendar, calendar name or asset class.
        index: UTC bar timestamps.
        freq: Bar frequency.

    Returns:
        float64 fractions in ``(0, 1]`` (above 1 for a session longer than regular).

    Raises:
        ValueError: If a bar lies in no session (see :func:`bar_session_positions`).
    """
    cal = get_calendar(calendar)
    hours = session_lengths(cal, index, freq=freq)
    step = parse_freq(freq)
    full = _session_table(cal)[-1][0] if step >= pd.Timedelta("1D") else step.value
    return hours / (full / 3.6e12)
