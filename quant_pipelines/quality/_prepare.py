"""Shared preparation of a scoring frame: history tail + batch, unique sorted rows, sessions.

Rules and features both need the same view of the data:

* the batch's rows in their original order (duplicates included), and
* one row per timestamp, sorted, with the tail of ``history`` in front so that trailing
  statistics, stale runs and gaps can reach back before the batch.

Everything derived here is causal: a row's flags depend on that row and the rows before it.
The history tail is long enough (:data:`HISTORY_USABLE` usable rows) that the features of a
batch row are exactly those it would get with all of history in front.

The view holds NumPy arrays (timestamps as int64 nanoseconds, OHLCV as an ``(n, 5)`` float64
matrix); the pandas frames are built only when asked for. Scoring one bar a day for many
symbols is dominated by this per-symbol work, so it stays out of pandas.

Private helper of :mod:`quant_pipelines.quality`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from quant_pipelines.marketdata.calendars import CalendarLike
from quant_pipelines.marketdata.schema import (
    BAR_COLUMNS,
    INDEX_NAME,
    BarSchemaError,
    make_bars,
    normalize_bars,
)
from quant_pipelines.marketdata.validate import (
    INCONSISTENT_OHLC,
    NEGATIVE_VOLUME,
    NON_FINITE_VALUE,
    NON_POSITIVE_PRICE,
    value_checks,
)
from quant_pipelines.quality._runs import (
    previous_usable,
    run_positions,
    stale_repeats,
    stale_runs,
)
from quant_pipelines.quality._sessions import OffCalendarError, sessions_many, sessions_of

__all__ = [
    "HISTORY_USABLE",
    "OffCalendarError",
    "Prepared",
    "bar_arrays",
    "bars_like_empty",
    "impossible",
    "prepare",
    "prepare_many",
    "previous_usable",
    "run_positions",
    "sessions_many",
    "sessions_of",
    "stale_repeats",
    "stale_runs",
]

HISTORY_USABLE = 160
"""Usable history rows kept in front of a batch: more than the features' memory (141 usable
rows: a 60-bar robust median of 60-bar deviations, then a 20-bar mean, then the previous bar)."""

CLOSE = BAR_COLUMNS.index("close")
"""Column of the close in the ``(n, 5)`` value matrices."""


@dataclass(frozen=True)
class Prepared:
    """The batch and its unique, sorted frame.

    Attributes:
        index: The batch's timestamps (UTC, named ``ts``), original order, duplicates kept.
        values: The batch's OHLCV, ``(len(index), 5)`` float64 in bar-schema column order.
        frame_index: One timestamp per frame row (first occurrence), sorted; history first.
        frame_values: The frame's OHLCV, ``(len(frame_index), 5)`` float64.
        n_hist: Number of history rows at the front of the frame.
        row_to_frame: For each batch row, its position in the frame.
        pos: Position of each frame row on the expected bar grid (its session for daily
            bars; row number when there is no calendar), as float64.
        fraction: Per frame row, its trading time as a fraction of a regular bar
            (1 without a calendar; 0.54 for an XNYS early close).
        value_bad: Per batch row: impossible values (non-positive or non-finite price,
            inconsistent OHLC, negative volume) and zero volume.
        frame_bad: Impossible values per frame row.
        stale: Per frame row: the close repeats the previous one and the run of identical
            closes up to and including this row is at least ``stale_run`` long (causal).
        usable: Per frame row: may enter trailing statistics.
    """

    index: pd.DatetimeIndex
    values: np.ndarray
    frame_index: pd.DatetimeIndex
    frame_values: np.ndarray
    n_hist: int
    row_to_frame: np.ndarray
    pos: np.ndarray
    fraction: np.ndarray
    value_bad: dict[str, np.ndarray]
    frame_bad: np.ndarray
    stale: np.ndarray
    usable: np.ndarray

    @cached_property
    def bars(self) -> pd.DataFrame:
        """The batch as a bar-schema frame (original order, duplicate rows kept)."""
        return make_bars(self.index, self.values)

    @cached_property
    def frame(self) -> pd.DataFrame:
        """The unique, sorted frame as a bar-schema frame."""
        return make_bars(self.frame_index, self.frame_values)

    @property
    def frame_close(self) -> np.ndarray:
        """Closes of the frame rows."""
        return self.frame_values[:, CLOSE]


def impossible(checks: dict[str, np.ndarray]) -> np.ndarray:
    """Rows with any impossible value (zero volume is possible, so it is not counted)."""
    keys = (NON_POSITIVE_PRICE, NON_FINITE_VALUE, INCONSISTENT_OHLC, NEGATIVE_VOLUME)
    return np.logical_or.reduce([checks[k] for k in keys])


def bar_arrays(df: pd.DataFrame) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """The index and ``(n, 5)`` float64 OHLCV of a frame, as :func:`normalize_bars` gives them.

    A frame already in the schema (the five columns in order, numeric, a tz-aware index) is
    read without a copy of every column.

    Raises:
        BarSchemaError: If the frame cannot be coerced to the bar schema.
    """
    index = df.index if isinstance(df, pd.DataFrame) else None
    if (
        isinstance(index, pd.DatetimeIndex)
        and index.tz is not None
        and tuple(df.columns) == BAR_COLUMNS
        and not index.hasnans
    ):
        values = df.to_numpy()
        if values.dtype == np.float64:  # every column float64, or ints made float as normalize
            return index.tz_convert("UTC").as_unit("ns").rename(INDEX_NAME), values
    df = normalize_bars(df)
    return df.index, df.to_numpy(dtype="float64")


def bars_like_empty() -> pd.DataFrame:
    """An empty bar-schema frame."""
    index = pd.DatetimeIndex([], dtype="datetime64[ns, UTC]", name="ts")
    return pd.DataFrame({c: np.empty(0) for c in BAR_COLUMNS}, index=index)


def _first_sorted(stamps: np.ndarray) -> np.ndarray:
    """Rows of the first occurrence of each distinct timestamp, in timestamp order."""
    if len(stamps) < 2 or bool((np.diff(stamps) > 0).all()):
        return np.arange(len(stamps))
    return np.unique(stamps, return_index=True)[1]


def _history_tail(bad: np.ndarray, close: np.ndarray, stale_run: int) -> int:
    """First history row kept: the tail that holds the last HISTORY_USABLE usable rows."""
    usable = np.flatnonzero(~bad & ~stale_repeats(np.where(bad, np.nan, close), min_run=stale_run))
    if len(usable) <= HISTORY_USABLE:
        return 0
    # A run cut at the tail's start is recounted from there: the margin keeps that recount
    # out of the last HISTORY_USABLE usable rows, so batch features stay exact.
    return max(int(usable[-HISTORY_USABLE]) - max(int(stale_run), 2), 0)


@dataclass(frozen=True)
class PrepareInput:
    """One symbol's arguments of :func:`prepare` (see there)."""

    bars: pd.DataFrame
    history: pd.DataFrame | None = None
    calendar: CalendarLike | None = None
    freq: str = "1D"
    stale_run: int = 5
    symbol: str | None = None


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
    return prepare_many([PrepareInput(bars, history, calendar, freq, stale_run, symbol)])[0]


def _who(symbol: str | None) -> str:
    return f"symbol {symbol!r}" if symbol else "bars"


def _arrays(
    item: PrepareInput,
) -> tuple[pd.DatetimeIndex, np.ndarray, pd.DatetimeIndex, np.ndarray]:
    """Batch and history arrays (history: first row per timestamp, sorted, before the batch).

    Raises:
        BarSchemaError: If the bars or the history are not in the bar schema (the message
            names the symbol).
    """
    try:
        index, values = bar_arrays(item.bars)
        empty = item.history is None or len(item.history) == 0
        h_index, h_values = (index[:0], np.empty((0, 5))) if empty else bar_arrays(item.history)
    except BarSchemaError as exc:
        raise BarSchemaError(f"{_who(item.symbol)}: {exc}") from exc
    if empty:
        return index, values, h_index, h_values
    keep = _first_sorted(h_index.asi8)
    if len(index):
        keep = keep[h_index.asi8[keep] < index.asi8.min()]
    return index, values, h_index[keep], h_values[keep]


def prepare_many(items: Sequence[PrepareInput]) -> list[Prepared]:
    """:func:`prepare` of many symbols, identical to one call each.

    The value checks run once over the rows of all symbols, and the calendar lookups of daily
    bars once per calendar: the pandas and calendar overhead is paid once per batch, not once
    per symbol.
    """
    arrays = [_arrays(item) for item in items]
    blocks = [m for _, values, _, h_values in arrays for m in (h_values, values)]
    checks = _checks(np.concatenate(blocks) if len(blocks) > 1 else blocks[0]) if blocks else {}
    staged, start = [], 0
    for item, (index, values, h_index, h_values) in zip(items, arrays, strict=True):
        n_h, stop = len(h_index), start + len(h_index) + len(index)
        own = {k: v[start:stop] for k, v in checks.items()}
        start = stop
        bad = impossible(own)
        cut = _history_tail(bad[:n_h], h_values[:, CLOSE], item.stale_run) if n_h else 0
        first = _first_sorted(index.asi8)
        if n_h - cut:
            frame_index = h_index[cut:].append(index[first])
            frame_values = np.concatenate([h_values[cut:], values[first]])
        else:
            frame_index, frame_values = index[first], values[first]
        frame_bad = np.concatenate([bad[cut:n_h], bad[n_h:][first]])
        close = np.where(frame_bad, np.nan, frame_values[:, CLOSE])
        stale = stale_repeats(close, min_run=item.stale_run)
        staged.append(
            {
                "index": index,
                "values": values,
                "frame_index": frame_index,
                "frame_values": frame_values,
                "n_hist": n_h - cut,
                "row_to_frame": (n_h - cut) + np.searchsorted(index.asi8[first], index.asi8),
                "value_bad": {k: v[n_h:] for k, v in own.items()},
                "frame_bad": frame_bad,
                "stale": stale,
                "usable": ~frame_bad & ~stale,
            }
        )
    sessions = sessions_many(
        [(item.calendar, item.freq, item.symbol) for item in items],
        [stage["frame_index"] for stage in staged],
    )
    return [
        Prepared(pos=pos, fraction=fraction, **stage)
        for stage, (pos, fraction) in zip(staged, sessions, strict=True)
    ]


def _checks(values: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`~quant_pipelines.marketdata.validate.value_checks` of an OHLCV matrix."""
    return value_checks(pd.DataFrame(values, columns=list(BAR_COLUMNS), copy=False))
