"""Preparing one symbol's bars for storage: validate, de-duplicate, find gaps. Pure."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd

from quant_pipelines.marketdata.calendars import CalendarLike, bar_times
from quant_pipelines.marketdata.schema import normalize_bars
from quant_pipelines.marketdata.validate import (
    DUPLICATE_BAR,
    INCONSISTENT_OHLC,
    NEGATIVE_VOLUME,
    NON_FINITE_VALUE,
    NON_POSITIVE_PRICE,
    OUTSIDE_SESSION,
    ValidationIssue,
    validate_bars,
)

#: Rules that make a single row unusable as data (it is stored, flagged, and never read).
ROW_RULES = frozenset(
    {NON_POSITIVE_PRICE, INCONSISTENT_OHLC, NON_FINITE_VALUE, NEGATIVE_VOLUME, OUTSIDE_SESSION}
)
#: Rules checked by the blocking "valid OHLC" check.
OHLC_RULES = ROW_RULES - {OUTSIDE_SESSION}
#: Rules whose issues fail the blocking ingest gate: bad values, and duplicate timestamps.
GATE_RULES = OHLC_RULES | {DUPLICATE_BAR}


@dataclass
class PreparedBars:
    """One symbol's bars, ready to upsert, with what validation found.

    Attributes:
        symbol: The symbol.
        bars: Sorted bars with duplicate timestamps removed (first occurrence kept).
        issues: Every validation issue of the raw input.
        invalid_ts: Timestamps of rows broken by a :data:`ROW_RULES` rule.
        issues_by_ts: Rule names broken by each invalid row.
        duplicates: The rows dropped as duplicates.
        missing: Expected bar times absent from the input.
        expected: Number of bar times the calendar expects.
    """

    symbol: str
    bars: pd.DataFrame
    issues: list[ValidationIssue]
    invalid_ts: list[pd.Timestamp] = field(default_factory=list)
    issues_by_ts: dict[pd.Timestamp, list[str]] = field(default_factory=dict)
    duplicates: pd.DataFrame = field(default_factory=pd.DataFrame)
    missing: pd.DatetimeIndex = field(default_factory=lambda: pd.DatetimeIndex([], tz="UTC"))
    expected: int = 0

    def rule_counts(self) -> dict[str, int]:
        """Number of issues per rule."""
        counts: dict[str, int] = defaultdict(int)
        for issue in self.issues:
            counts[issue.rule] += 1
        return dict(counts)


def prepare_bars(
    raw: pd.DataFrame,
    *,
    symbol: str,
    calendar: CalendarLike,
    sessions: pd.DatetimeIndex | list[str],
    freq: str = "1D",
) -> PreparedBars:
    """Validates raw bars of some sessions and prepares them for an idempotent upsert.

    Args:
        raw: Bars from a source (any order, possibly with duplicates or bad values).
        symbol: Their symbol.
        calendar: The symbol's calendar.
        sessions: Session labels the bars should cover (gaps are measured against them).
        freq: Bar frequency.

    Returns:
        The prepared bars and their issues.
    """
    frame = normalize_bars(raw)
    issues = validate_bars(frame, calendar=calendar, freq=freq, symbol=symbol)
    by_ts: dict[pd.Timestamp, list[str]] = defaultdict(list)
    for issue in issues:
        if issue.rule in ROW_RULES and issue.ts is not None:
            by_ts[issue.ts].append(issue.rule)
    dup_mask = frame.index.duplicated(keep="first")
    duplicates = frame[dup_mask]
    clean = frame[~dup_mask].sort_index()
    labels = pd.DatetimeIndex(pd.to_datetime(list(sessions)))
    expected = pd.DatetimeIndex([], tz="UTC")
    if len(labels):
        expected = bar_times(calendar, labels.min(), labels.max(), freq=freq)
    missing = expected[~expected.isin(clean.index)]
    return PreparedBars(
        symbol=symbol,
        bars=clean,
        issues=issues,
        invalid_ts=sorted(by_ts),
        issues_by_ts={ts: sorted(set(rules)) for ts, rules in by_ts.items()},
        duplicates=duplicates,
        missing=missing,
        expected=len(expected),
    )
