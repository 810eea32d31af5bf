"""The data-quality rule vocabulary, the value checks, and rule-based validation of bar frames.

One vocabulary serves validation at ingest (:func:`validate_bars`) and the sentinel's rules
(:mod:`quant_pipelines.quality.rules`), which imports its names and value checks from here:

* ``non_positive_price`` — a price column is ``<= 0``;
* ``non_finite_value`` — a NaN or infinite value;
* ``inconsistent_ohlc`` — ``high < max(open, close, low)`` or ``low > min(open, close)``;
* ``negative_volume`` — ``volume < 0``;
* ``zero_volume`` — ``volume == 0`` (the sentinel's rule; validation does not report it);
* ``duplicate_bar`` — a timestamp appears more than once;
* ``unsorted_ts`` — a timestamp earlier than the row before it (validation only);
* ``outside_session`` — (only with a calendar) a timestamp that is not an expected bar time
  (validation only);
* ``price_jump``, ``stale_price``, ``missing_bars`` — the sentinel's rules over a series (see
  :mod:`quant_pipelines.quality.rules`).

:func:`validate_bars` reports one :class:`ValidationIssue` per row and column for the value
checks (``column`` says which price was inconsistent), and each repeat of a timestamp for
``duplicate_bar``. Names used before the vocabulary was shared are mapped by
:func:`canonical_rule` (:data:`RENAMED_RULES`).

All checks are vectorised; Python only loops over the rows that have issues.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pandas as pd

from quant_pipelines.marketdata.calendars import CalendarLike, DateLike, bar_times
from quant_pipelines.marketdata.schema import normalize_bars

NON_POSITIVE_PRICE = "non_positive_price"
NON_FINITE_VALUE = "non_finite_value"
INCONSISTENT_OHLC = "inconsistent_ohlc"
NEGATIVE_VOLUME = "negative_volume"
ZERO_VOLUME = "zero_volume"
DUPLICATE_BAR = "duplicate_bar"
UNSORTED_TS = "unsorted_ts"
OUTSIDE_SESSION = "outside_session"
PRICE_JUMP = "price_jump"
STALE_PRICE = "stale_price"
MISSING_BARS = "missing_bars"

VALUE_RULES: tuple[str, ...] = (
    NON_POSITIVE_PRICE,
    INCONSISTENT_OHLC,
    NON_FINITE_VALUE,
    NEGATIVE_VOLUME,
    ZERO_VOLUME,
)
"""Rules about one bar's values, checked by :func:`value_checks`."""

RULES: tuple[str, ...] = (
    NON_POSITIVE_PRICE,
    INCONSISTENT_OHLC,
    NON_FINITE_VALUE,
    NEGATIVE_VOLUME,
    DUPLICATE_BAR,
    UNSORTED_TS,
    OUTSIDE_SESSION,
)
"""The rules :func:`validate_bars` reports, in the order of its result."""

RENAMED_RULES: dict[str, str] = {
    "high_below_open_close": INCONSISTENT_OHLC,
    "low_above_open_close": INCONSISTENT_OHLC,
    "nan_value": NON_FINITE_VALUE,
    "duplicate_ts": DUPLICATE_BAR,
}
"""Validation rule names written before validation and the sentinel shared one vocabulary."""

_PRICES = ("open", "high", "low", "close")


def canonical_rule(name: str) -> str:
    """The current name of a rule, also for names found in documents stored before a rename.

    Args:
        name: A rule name, current or from :data:`RENAMED_RULES`.

    Returns:
        The current name (``name`` itself when it was never renamed).
    """
    return RENAMED_RULES.get(name, name)


def column_checks(bars: pd.DataFrame) -> Iterator[tuple[str, str, np.ndarray]]:
    """The value checks, one boolean mask per rule and offending column.

    Args:
        bars: Bar-schema frame (``open``, ``high``, ``low``, ``close``, ``volume``).

    Yields:
        ``(rule, column, mask)`` in :data:`VALUE_RULES` order, for every column a rule
        inspects; ``mask`` marks the rows that break the rule in that column.
    """
    cols = {c: bars[c].to_numpy(dtype="float64") for c in (*_PRICES, "volume")}
    o, h, low, c = (cols[k] for k in _PRICES)
    v = cols["volume"]
    with np.errstate(invalid="ignore"):
        for col in _PRICES:
            yield NON_POSITIVE_PRICE, col, cols[col] <= 0
        yield INCONSISTENT_OHLC, "high", h < np.fmax(np.fmax(o, c), low)
        yield INCONSISTENT_OHLC, "low", low > np.fmin(o, c)
        for col, values in cols.items():
            yield NON_FINITE_VALUE, col, ~np.isfinite(values)
        yield NEGATIVE_VOLUME, "volume", v < 0
        yield ZERO_VOLUME, "volume", v == 0


def value_checks(bars: pd.DataFrame) -> dict[str, np.ndarray]:
    """Row-wise value checks: for each rule of :data:`VALUE_RULES`, the rows that break it.

    Args:
        bars: Bar-schema frame.

    Returns:
        Boolean arrays keyed by the rules of :data:`VALUE_RULES`.
    """
    out = {rule: np.zeros(len(bars), dtype=bool) for rule in VALUE_RULES}
    for rule, _, mask in column_checks(bars):
        out[rule] |= mask
    return out


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


_VALIDATED = frozenset(RULES)
_MESSAGES: dict[tuple[str, str], str] = {
    **{(NON_POSITIVE_PRICE, c): "{column} is not positive: {value!r}" for c in _PRICES},
    (INCONSISTENT_OHLC, "high"): "high {value!r} is below max(open, close, low)",
    (INCONSISTENT_OHLC, "low"): "low {value!r} is above min(open, close)",
    **{
        (NON_FINITE_VALUE, c): "{column} is not a finite number: {value!r}"
        for c in (*_PRICES, "volume")
    },
    (NEGATIVE_VOLUME, "volume"): "volume is negative: {value!r}",
}


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
    out: list[ValidationIssue] = []
    for rule, col, mask in column_checks(bars):
        if rule in _VALIDATED:
            out += _issues(
                rule,
                index,
                mask,
                _MESSAGES[rule, col],
                symbol=symbol,
                column=col,
                values=bars[col].to_numpy(),
            )
    stamps = index.asi8
    out += _issues(
        DUPLICATE_BAR,
        index,
        index.duplicated(keep="first"),
        "timestamp {ts} appears more than once",
        symbol=symbol,
    )
    unsorted = np.zeros(len(stamps), dtype=bool)
    unsorted[1:] = stamps[1:] < stamps[:-1]
    out += _issues(
        UNSORTED_TS,
        index,
        unsorted,
        "timestamp {ts} is earlier than the row before it",
        symbol=symbol,
    )
    if calendar is not None and len(index):
        expected = _expected_times(calendar, index, freq=freq)
        out += _issues(
            OUTSIDE_SESSION,
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
