"""Shared preparation of a scoring frame: history tail + batch, unique sorted rows, sessions.

Rules and features both need the same view of the data:

* the batch's rows in their original order (duplicates included), and
* one row per timestamp, sorted, with the tail of ``history`` in front so that trailing
  statistics, stale runs and gaps can reach back before the batch.

Everything derived here is causal: a row's flags depend on that row and the rows before it.
The history tail is long enough (:data:`HISTORY_USABLE` usable rows) that the features of a
batch row are exactly those it would get with all of history in front.

Private helper of :mod:`quant_pipelines.quality`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from quant_pipelines.marketdata.calendars import (
    CalendarLike,
    bar_session_positions,
    bar_times,
    parse_freq,
    session_fractions,
)
from quant_pipelines.marketdata.schema import BAR_COLUMNS, normalize_bars
from quant_pipelines.marketdata.validate import (
    INCONSISTENT_OHLC,
    NEGATIVE_VOLUME,
    NON_FINITE_VALUE,
    NON_POSITIVE_PRICE,
    value_checks,
)

HISTORY_USABLE = 160
"""Usable history rows kept in front of a batch: more than the features' memory (141 usable
rows: a 60-bar robust median of 60-bar deviations, then a 20-bar mean, then the previous bar)."""


class OffCalendarError(ValueError):
    """Bars lie outside the sessions of the calendar they are scored on."""


@dataclass(frozen=True)
class Prepared:
    """The batch and its unique, sorted frame.

    Attributes:
        bars: The batch in the bar schema, original order (duplicate rows kept).
        frame: One row per timestamp (first occurrence), sorted; the history tail first.
        n_hist: Number of history rows at the front of ``frame``.
        row_to_frame: For each row of ``bars``, its position in ``frame``.
        pos: Position of each ``frame`` row on the expected bar grid (its session for daily
            bars; row number when there is no calendar), as float64.
        fraction: Per ``frame`` row, its trading time as a fraction of a regular bar
            (1 without a calendar; 0.54 for an XNYS early close).
        value_bad: Per ``bars`` row: impossible values (non-positive or non-finite price,
            inconsistent OHLC, negative volume) and zero volume.
        frame_bad: Impossible values per ``frame`` row.
        stale: Per ``frame`` row: the close repeats the previous one and the run of identical
            closes up to and including this row is at least ``stale_run`` long (causal).
        usable: Per ``frame`` row: may enter trailing statistics.
    """

    bars: pd.DataFrame
    frame: pd.DataFrame
    n_hist: int
    row_to_frame: np.ndarray
    pos: np.ndarray
    fraction: np.ndarray
    value_bad: dict[str, np.ndarray]
    frame_bad: np.ndarray
    stale: np.ndarray
    usable: np.ndarray


def impossible(checks: dict[str, np.ndarray]) -> np.ndarray:
    """Rows with any impossible value (zero volume is possible, so it is not counted)."""
    keys = (NON_POSITIVE_PRICE, NON_FINITE_VALUE, INCONSISTENT_OHLC, NEGATIVE_VOLUME)
    return np.logical_or.reduce([checks[k] for k in keys])


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


def run_positions(close: np.ndarray) -> np.ndarray:
    """1-based position of each row in its run of identical valid closes (1: a new value)."""
    n = len(close)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    valid = np.isfinite(close) & (close > 0)
    same = np.zeros(n, dtype=bool)
    same[1:] = (close[1:] == close[:-1]) & valid[1:] & valid[:-1]
    starts = np.maximum.accumulate(np.where(~same, np.arange(n), 0))
    return np.arange(n) - starts + 1


def stale_repeats(close: np.ndarray, *, min_run: int) -> np.ndarray:
    """Rows whose run of identical closes, up to and including them, is ``min_run`` or longer.

    Causal: the bar that makes the run ``min_run`` long is the first flagged, and the earlier
    repeats of the run are never flagged retroactively.

    Args:
        close: Closes of unique, sorted rows (invalid closes break runs).
        min_run: Run length (identical closes, the first one included) that makes it stale.

    Returns:
        Boolean array.
    """
    return run_positions(close) >= max(int(min_run), 2)


def stale_runs(close: np.ndarray, *, min_run: int) -> np.ndarray:
    """Every repeat of a run that reaches ``min_run`` identical closes (for training masks).

    Not causal (a run's early repeats are known to be stale only once it is long): use it on
    data strictly before what is scored, e.g. to leave stale repeats out of a training window.
    """
    pos = run_positions(close)
    run_id = np.cumsum(pos == 1)
    longest = np.zeros(run_id.max() + 1 if len(pos) else 1, dtype=np.int64)
    np.maximum.at(longest, run_id, pos)
    return (pos > 1) & (longest[run_id] >= max(int(min_run), 2))


def _history_before(
    history: pd.DataFrame | None, first_ts: pd.Timestamp | None, stale_run: int
) -> pd.DataFrame:
    if history is None or len(history) == 0:
        return bars_like_empty()
    hist = normalize_bars(history)
    hist = hist[~hist.index.duplicated(keep="first")].sort_index(kind="stable")
    if first_ts is not None:
        hist = hist[hist.index < first_ts]
    bad = impossible(value_checks(hist))
    close = np.where(bad, np.nan, hist["close"].to_numpy(dtype="float64"))
    usable = np.flatnonzero(~bad & ~stale_repeats(close, min_run=stale_run))
    if len(usable) <= HISTORY_USABLE:
        return hist
    # A run cut at the tail's start is recounted from there: the margin keeps that recount
    # out of the last HISTORY_USABLE usable rows, so batch features stay exact.
    cut = max(int(usable[-HISTORY_USABLE]) - max(int(stale_run), 2), 0)
    return hist.iloc[cut:]


def bars_like_empty() -> pd.DataFrame:
    """An empty bar-schema frame."""
    index = pd.DatetimeIndex([], dtype="datetime64[ns, UTC]", name="ts")
    return pd.DataFrame({c: np.empty(0) for c in BAR_COLUMNS}, index=index)


def prepare(
    bars: pd.DataFrame,
    *,
    history: pd.DataFrame | None = None,
    calendar: CalendarLike | None = None,
    freq: str = "1D",
    stale_run: int = 5,
    symbol: str | None = None,
) -> Prepared:
    """Build the shared view of a batch.

    Args:
        bars: The batch (any order, duplicates allowed).
        history: Earlier bars of the same symbol; only rows before the batch's first timestamp
            are used, and only the tail that holds the last :data:`HISTORY_USABLE` usable rows.
        calendar: Calendar for grid positions (gaps) and session lengths; ``None`` disables
            gap detection and treats every bar as a full session.
        freq: Bar frequency.
        stale_run: Run of identical closes flagged as stale.
        symbol: Named in error messages.

    Returns:
        The prepared view.

    Raises:
        ValueError: If a bar lies outside the calendar's sessions.
    """
    batch = normalize_bars(bars)
    first_ts = batch.index.min() if len(batch) else None
    hist = _history_before(history, first_ts, stale_run)
    order = np.argsort(batch.index.asi8, kind="stable")
    sorted_batch = batch.iloc[order]
    unique_batch = sorted_batch[~sorted_batch.index.duplicated(keep="first")]
    frame = pd.concat([hist, unique_batch]) if len(hist) else unique_batch
    n_hist = len(hist)
    row_to_frame = n_hist + np.searchsorted(unique_batch.index.asi8, batch.index.asi8)

    frame_bad = impossible(value_checks(frame))
    close = np.where(frame_bad, np.nan, frame["close"].to_numpy(dtype="float64"))
    stale = stale_repeats(close, min_run=stale_run)
    pos, fraction = sessions_of(frame.index, calendar, freq, symbol=symbol)
    return Prepared(
        bars=batch,
        frame=frame,
        n_hist=n_hist,
        row_to_frame=row_to_frame,
        pos=pos,
        fraction=fraction,
        value_bad=value_checks(batch),
        frame_bad=frame_bad,
        stale=stale,
        usable=~frame_bad & ~stale,
    )


def previous_usable(usable: np.ndarray) -> np.ndarray:
    """For each row, the index of the last usable row strictly before it (-1 when none)."""
    n = len(usable)
    idx = np.where(usable, np.arange(n), -1)
    last = np.maximum.accumulate(idx) if n else idx
    out = np.full(n, -1, dtype=np.int64)
    out[1:] = last[:-1]
    return out
