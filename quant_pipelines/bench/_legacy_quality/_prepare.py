"""Shared preparation of a scoring frame: history tail + batch, unique sorted rows, grid positions.

Rules and features both need the same view of the data:

* the batch's rows in their original order (duplicates included), and
* one row per timestamp, sorted, with the tail of ``history`` in front so that trailing
  statistics, stale runs and gaps can reach back before the batch.

Private helper of :mod:`quant_pipelines.quality`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from quant_pipelines.bench._legacy_quality.calendars import CalendarLike, bar_times
from quant_pipelines.marketdata.schema import BAR_COLUMNS, normalize_bars

HISTORY_TAIL = 160
"""Bars of history kept in front of a batch (covers the longest trailing window with margin)."""


@dataclass(frozen=True)
class Prepared:
    """The batch and its unique, sorted frame.

    Attributes:
        bars: The batch in the bar schema, original order (duplicate rows kept).
        frame: One row per timestamp (first occurrence), sorted; the history tail first.
        n_hist: Number of history rows at the front of ``frame``.
        row_to_frame: For each row of ``bars``, its position in ``frame``.
        pos: Position of each ``frame`` row on the expected bar grid (row number when there
            is no calendar), as float64.
        value_bad: Per ``bars`` row: impossible values (non-positive or non-finite price,
            inconsistent OHLC, negative volume).
        frame_bad: The same for ``frame`` rows.
        stale: Per ``frame`` row: repeats the previous close inside a run of at least
            ``stale_run`` identical closes.
        usable: Per ``frame`` row: may enter trailing statistics and model training.
    """

    bars: pd.DataFrame
    frame: pd.DataFrame
    n_hist: int
    row_to_frame: np.ndarray
    pos: np.ndarray
    value_bad: dict[str, np.ndarray]
    frame_bad: np.ndarray
    stale: np.ndarray
    usable: np.ndarray


def value_checks(values: pd.DataFrame) -> dict[str, np.ndarray]:
    """Row-wise impossible-value checks.

    Args:
        values: Bar-schema frame.

    Returns:
        Boolean arrays keyed ``non_positive_price``, ``non_finite_value``,
        ``inconsistent_ohlc``, ``negative_volume`` and ``zero_volume``.
    """
    o, h, low, c, v = (values[col].to_numpy(dtype="float64") for col in BAR_COLUMNS)
    prices = np.column_stack([o, h, low, c])
    with np.errstate(invalid="ignore"):
        non_positive = (prices <= 0).any(axis=1)
        inconsistent = (h < np.fmax(o, c)) | (low > np.fmin(o, c)) | (h < low)
        negative_volume = v < 0
        zero_volume = v == 0
    non_finite = ~np.isfinite(np.column_stack([prices, v])).all(axis=1)
    return {
        "non_positive_price": non_positive,
        "non_finite_value": non_finite,
        "inconsistent_ohlc": inconsistent,
        "negative_volume": negative_volume,
        "zero_volume": zero_volume,
    }


def impossible(checks: dict[str, np.ndarray]) -> np.ndarray:
    """Rows with any impossible value (zero volume is possible, so it is not counted)."""
    keys = ("non_positive_price", "non_finite_value", "inconsistent_ohlc", "negative_volume")
    return np.logical_or.reduce([checks[k] for k in keys])


def grid_positions(index: pd.DatetimeIndex, calendar: CalendarLike | None, freq: str) -> np.ndarray:
    """Position of each (sorted, unique) timestamp on the calendar's expected bar grid.

    Args:
        index: Sorted unique UTC timestamps.
        calendar: Calendar, calendar name or asset class; ``None`` numbers the rows instead.
        freq: Bar frequency.

    Returns:
        float64 positions; consecutive bars without a gap differ by exactly 1.
    """
    n = len(index)
    if calendar is None or n == 0:
        return np.arange(n, dtype="float64")
    lo = index[0].tz_convert(None).normalize() - pd.Timedelta("2D")
    hi = index[-1].tz_convert(None).normalize() + pd.Timedelta("2D")
    grid = bar_times(calendar, lo, hi, freq=freq).asi8
    stamps = index.asi8
    left = np.searchsorted(grid, stamps, side="left")
    on_grid = (left < len(grid)) & (grid[np.minimum(left, len(grid) - 1)] == stamps)
    # Off-grid timestamps sit half-way between their neighbours on the grid.
    return np.where(on_grid, left, left - 0.5).astype("float64")


def stale_repeats(close: np.ndarray, *, min_run: int) -> np.ndarray:
    """Rows that repeat the previous close inside a run of ``min_run`` or more identical closes.

    Args:
        close: Closes of unique, sorted rows.
        min_run: Minimum number of identical closes (the first one included) to flag.

    Returns:
        Boolean array; the first bar of a run (the genuine value) is not flagged.
    """
    n = len(close)
    if n == 0:
        return np.zeros(0, dtype=bool)
    valid = np.isfinite(close) & (close > 0)
    same = np.zeros(n, dtype=bool)
    same[1:] = (close[1:] == close[:-1]) & valid[1:] & valid[:-1]
    run_id = np.cumsum(~same)
    run_len = np.bincount(run_id)[run_id]
    return same & (run_len >= min_run)


def _history_before(history: pd.DataFrame | None, first_ts: pd.Timestamp | None) -> pd.DataFrame:
    if history is None or len(history) == 0:
        return normalize_bars(bars_like_empty())
    hist = normalize_bars(history)
    hist = hist[~hist.index.duplicated(keep="first")].sort_index(kind="stable")
    if first_ts is not None:
        hist = hist[hist.index < first_ts]
    return hist.iloc[-HISTORY_TAIL:]


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
) -> Prepared:
    """Build the shared view of a batch.

    Args:
        bars: The batch (any order, duplicates allowed).
        history: Earlier bars of the same symbol; only rows before the batch's first timestamp
            are used, and only the last :data:`HISTORY_TAIL` of them.
        calendar: Calendar for grid positions (gaps); ``None`` disables gap detection.
        freq: Bar frequency.
        stale_run: Minimum run of identical closes flagged as stale.

    Returns:
        The prepared view.
    """
    batch = normalize_bars(bars)
    first_ts = batch.index.min() if len(batch) else None
    hist = _history_before(history, first_ts)
    order = np.argsort(batch.index.asi8, kind="stable")
    sorted_batch = batch.iloc[order]
    first_mask = ~sorted_batch.index.duplicated(keep="first")
    unique_batch = sorted_batch[first_mask]
    frame = pd.concat([hist, unique_batch]) if len(hist) else unique_batch
    n_hist = len(hist)
    row_to_frame = n_hist + np.searchsorted(unique_batch.index.asi8, batch.index.asi8)

    value_bad = value_checks(batch)
    frame_checks = value_checks(frame)
    frame_bad = impossible(frame_checks)
    close = frame["close"].to_numpy(dtype="float64")
    stale = stale_repeats(np.where(frame_bad, np.nan, close), min_run=stale_run)
    usable = ~frame_bad & ~stale
    pos = grid_positions(frame.index, calendar, freq)
    return Prepared(
        bars=batch,
        frame=frame,
        n_hist=n_hist,
        row_to_frame=row_to_frame,
        pos=pos,
        value_bad=value_bad,
        frame_bad=frame_bad,
        stale=stale,
        usable=usable,
    )


def previous_usable(usable: np.ndarray) -> np.ndarray:
    """For each row, the index of the last usable row strictly before it (-1 when none)."""
    n = len(usable)
    idx = np.where(usable, np.arange(n), -1)
    last = np.maximum.accumulate(idx) if n else idx
    out = np.full(n, -1, dtype=np.int64)
    out[1:] = last[:-1]
    return out
