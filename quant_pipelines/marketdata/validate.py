"""Rule-based validation of bar frames.

Each finding is a :class:`ValidationIssue` whose ``rule`` is one of :data:`RULES`:

* ``non_positive_price`` — a price column is ``<= 0`` (one issue per row and column);
* ``high_below_open_close`` — ``high < max(open, close)``;
* ``low_above_open_close`` — ``low > min(open, close)``;
* ``nan_value`` — a NaN or infinite value (one issue per row and column);
* ``negative_volume`` — ``volume < 0``;
* ``duplicate_ts`` — a timestamp seen earlier in the frame (reported at each repeat);
* ``unsorted_ts`` — a timestamp earlier than the row before it;
* ``outside_session`` — (only with a calendar) a timestamp that is not an expected bar time.

All checks are vectorised; Python only loops over the rows that have issues.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from quant_pipelines.marketdata.calendars import CalendarLike, DateLike, bar_times
from quant_pipelines.marketdata.schema import normalize_bars

RULES: tuple[str, ...] = (
    "non_positive_price",
    "high_below_open_close",
    "low_above_open_close",
    "nan_value",
    "negative_volume",
    "duplicate_ts",
    "unsorted_ts",
    "outside_session",
)
"""Names of the validation rules."""

_PRICES = ("open", "high", "low", "close")


@dataclasses.dataclass(frozen=True)
class ValidationIssue:
    """One rule violation in a bar frame.

    Attributes:
        rule: One of :data:`RULES`.
        ts: Timestamp of the offending bar, or None for frame-level issues.
        message: Human-readable description.
        symbol: Symbol the frame belongs to, when known.
        column: Offending column, when the rule is about one column.
    """

    rule: str
    ts: pd.Timestamp | None
    message: str
    symbol: str | None = None
    column: str | None = None


def _issues(
    rule: str,
    index: pd.DatetimeIndex,
    mask: np.ndarray,
    message: str,
    *,
    symbol: str | None,
    column: str | None = None,
    values: np.ndarray | None = None,
) -> list[ValidationIssue]:
    rows = np.flatnonzero(mask)
    if rows.size == 0:
        return []
    stamps = index[rows]
    shown = values[rows].tolist() if values is not None else [None] * rows.size
    return [
        ValidationIssue(
            rule=rule,
            ts=ts,
            message=message.format(value=value, column=column, ts=ts),
            symbol=symbol,
            column=column,
        )
        for ts, value in zip(stamps, shown, strict=True)
    ]


def validate_bars(
    df: pd.DataFrame,
    *,
    calendar: CalendarLike | None = None,
    freq: str = "1D",
    symbol: str | None = None,
) -> list[ValidationIssue]:
    """Check a bar frame against the data-quality rules.

    Args:
        df: Bars; coerced with :func:`~quant_pipelines.marketdata.normalize_bars` first.
        calendar: Calendar, calendar name or asset class; enables ``outside_session``.
        freq: Bar frequency used to compute the expected bar times.
        symbol: Symbol stamped on every issue.

    Returns:
        Issues ordered by rule (as in :data:`RULES`), then by row. Empty for clean bars.

    Raises:
        BarSchemaError: If the frame cannot be coerced to the bar schema.
    """
    bars = normalize_bars(df)
    index = bars.index
    cols = {c: bars[c].to_numpy() for c in bars.columns}
    out: list[ValidationIssue] = []
    for col in _PRICES:
        out += _issues(
            "non_positive_price",
            index,
            cols[col] <= 0,
            "{column} is not positive: {value!r}",
            symbol=symbol,
            column=col,
            values=cols[col],
        )
    o, h, low, c = (cols[k] for k in _PRICES)
    with np.errstate(invalid="ignore"):
        top, bottom = np.fmax(o, c), np.fmin(o, c)
    out += _issues(
        "high_below_open_close",
        index,
        h < top,
        "high {value!r} is below max(open, close)",
        symbol=symbol,
        column="high",
        values=h,
    )
    out += _issues(
        "low_above_open_close",
        index,
        low > bottom,
        "low {value!r} is above min(open, close)",
        symbol=symbol,
        column="low",
        values=low,
    )
    for col, values in cols.items():
        out += _issues(
            "nan_value",
            index,
            ~np.isfinite(values),
            "{column} is not a finite number: {value!r}",
            symbol=symbol,
            column=col,
            values=values,
        )
    out += _issues(
        "negative_volume",
        index,
        cols["volume"] < 0,
        "volume is negative: {value!r}",
        symbol=symbol,
        column="volume",
        values=cols["volume"],
    )
    stamps = index.asi8
    out += _issues(
        "duplicate_ts",
        index,
        index.duplicated(keep="first"),
        "timestamp {ts} appears more than once",
        symbol=symbol,
    )
    unsorted = np.zeros(len(stamps), dtype=bool)
    unsorted[1:] = stamps[1:] < stamps[:-1]
    out += _issues(
        "unsorted_ts",
        index,
        unsorted,
        "timestamp {ts} is earlier than the row before it",
        symbol=symbol,
    )
    if calendar is not None and len(index):
        expected = _expected_times(calendar, index, freq=freq)
        out += _issues(
            "outside_session",
            index,
            ~index.isin(expected),
            "timestamp {ts} is not an expected bar time of the calendar",
            symbol=symbol,
        )
    return out


def _expected_times(
    calendar: CalendarLike, index: pd.DatetimeIndex, *, freq: str
) -> pd.DatetimeIndex:
    lo = index.min().tz_convert(None).normalize() - pd.Timedelta("1D")
    hi = index.max().tz_convert(None).normalize() + pd.Timedelta("1D")
    return bar_times(calendar, lo, hi, freq=freq)


def missing_bars(
    df: pd.DataFrame | pd.DatetimeIndex,
    calendar: CalendarLike,
    start: DateLike,
    end: DateLike,
    *,
    freq: str = "1D",
) -> pd.DatetimeIndex:
    """Expected bar times in ``[start, end]`` that the frame lacks.

    Args:
        df: Bars (or just their timestamps).
        calendar: Calendar, calendar name or asset class.
        start: First session date (inclusive).
        end: Last session date (inclusive).
        freq: Bar frequency.

    Returns:
        Sorted UTC DatetimeIndex of the absent bar times.
    """
    if isinstance(df, pd.DatetimeIndex):
        present = df
    else:
        present = df.index if isinstance(df.index, pd.DatetimeIndex) else normalize_bars(df).index
    if present.tz is None:
        present = present.tz_localize("UTC")
    expected = bar_times(calendar, start, end, freq=freq)
    return expected[~expected.isin(present)]


def issues_frame(issues: list[ValidationIssue]) -> pd.DataFrame:
    """Tabulate issues, e.g. for a Dagster metadata table.

    Args:
        issues: Issues from :func:`validate_bars`.

    Returns:
        Frame with columns ``rule``, ``ts`` (UTC), ``symbol``, ``column``, ``message``.
    """
    frame = pd.DataFrame(
        {
            "rule": pd.Series([i.rule for i in issues], dtype="object"),
            "ts": pd.to_datetime(pd.Series([i.ts for i in issues], dtype="object"), utc=True),
            "symbol": pd.Series([i.symbol for i in issues], dtype="object"),
            "column": pd.Series([i.column for i in issues], dtype="object"),
            "message": pd.Series([i.message for i in issues], dtype="object"),
        }
    )
    frame["ts"] = frame["ts"].dt.as_unit("ns")
    return frame
