"""Session positions and lengths of bar timestamps on a calendar. Private to the quality package.

:func:`sessions_of` gives each bar its position on the calendar's grid of expected bars (gaps
are differences of positions) and its session fraction (early closes). :func:`sessions_many`
does it for many symbols, with one calendar lookup for all daily bars of one calendar.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from quant_pipelines.marketdata.calendars import (
    CalendarLike,
    bar_session_positions,
    bar_times,
    parse_freq,
    session_fractions,
)


class OffCalendarError(ValueError):
    """Bars lie outside the sessions of the calendar they are scored on."""


def _calendar_name(calendar: CalendarLike) -> str:
    return calendar if isinstance(calendar, str) else calendar.name


def sessions_of(
    index: pd.DatetimeIndex,
    calendar: CalendarLike | None,
    freq: str,
    *,
    symbol: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Grid positions and session fractions of sorted unique timestamps.

    Args:
        index: Sorted unique UTC timestamps.
        calendar: Calendar, calendar name or asset class; ``None`` numbers the rows and
            gives every bar a full session.
        freq: Bar frequency.
        symbol: Named in the error message.

    Returns:
        ``(pos, fraction)`` as float64 arrays; consecutive bars without a gap differ by 1.

    Raises:
        OffCalendarError: If a bar lies outside the calendar's sessions (the symbol does not
            trade on that calendar); a ``ValueError``.
    """
    n = len(index)
    if calendar is None or n == 0:
        return np.arange(n, dtype="float64"), np.ones(n)
    try:
        session_pos = bar_session_positions(calendar, index, freq=freq)
        fraction = session_fractions(calendar, index, freq=freq)
    except ValueError as exc:
        who = f"symbol {symbol!r}" if symbol else "the symbol"
        raise OffCalendarError(
            f"{who} has bars outside calendar {_calendar_name(calendar)!r}: {exc}. Pass the "
            "calendar the symbol trades on (e.g. '24/7' for crypto, '24/5' for fx)."
        ) from exc
    if parse_freq(freq) >= pd.Timedelta("1D"):
        return session_pos.astype("float64"), fraction
    lo = index[0].tz_convert(None).normalize() - pd.Timedelta("2D")
    hi = index[-1].tz_convert(None).normalize() + pd.Timedelta("2D")
    grid = bar_times(calendar, lo, hi, freq=freq).asi8
    stamps = index.asi8
    left = np.searchsorted(grid, stamps, side="left")
    on_grid = (left < len(grid)) & (grid[np.minimum(left, len(grid) - 1)] == stamps)
    # In-session timestamps off the grid sit half-way between their neighbours on the grid.
    return np.where(on_grid, left, left - 0.5).astype("float64"), fraction


def sessions_many(
    items: Sequence[tuple[CalendarLike | None, str, str | None]],
    indexes: list[pd.DatetimeIndex],
) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`sessions_of` of each frame; daily bars of one calendar in one lookup.

    Args:
        items: ``(calendar, freq, symbol)`` of each frame.
        indexes: The frames' sorted unique timestamps.

    Returns:
        ``(pos, fraction)`` per frame, identical to :func:`sessions_of` of each.
    """
    out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(items)
    groups: dict[tuple[object, str], list[int]] = {}
    for i, (cal, freq, _) in enumerate(items):
        if cal is not None and len(indexes[i]) and parse_freq(freq) >= pd.Timedelta("1D"):
            key = (cal if isinstance(cal, str) else id(cal), freq)
            groups.setdefault(key, []).append(i)
    for members in groups.values():
        if len(members) < 2:
            continue
        cal, freq, _ = items[members[0]]
        stamps = np.concatenate([indexes[i].asi8 for i in members])
        joined = pd.DatetimeIndex(stamps.astype("datetime64[ns]")).tz_localize("UTC")
        try:  # every bar on the calendar: element-wise lookups, split per symbol
            pos = bar_session_positions(cal, joined, freq=freq).astype("float64")
            fraction = session_fractions(cal, joined, freq=freq)
        except ValueError:
            continue  # a symbol is off the calendar: each alone, so the error names it
        bounds = np.cumsum([0] + [len(indexes[i]) for i in members])
        for i, a, b in zip(members, bounds[:-1], bounds[1:], strict=True):
            out[i] = (pos[a:b], fraction[a:b])
    return [
        done
        if done is not None
        else sessions_of(indexes[i], items[i][0], items[i][1], symbol=items[i][2])
        for i, done in enumerate(out)
    ]
