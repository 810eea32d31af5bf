"""Rules for data errors: deterministic checks that need no model.

Rule names (the values of the ``rules`` column of :func:`~quant_pipelines.quality.score_bars`):

* ``non_positive_price`` — a price (open, high, low or close) is ``<= 0``;
* ``non_finite_value`` — a price or the volume is NaN or infinite;
* ``inconsistent_ohlc`` — ``high < max(open, close)``, ``low > min(open, close)`` or
  ``high < low``;
* ``negative_volume`` — volume ``< 0``;
* ``duplicate_bar`` — the timestamp appears more than once (every row of it is flagged);
* ``stale_price`` — the bar repeats the previous close inside a run of at least ``stale_run``
  (default 5) identical closes; the first bar of the run carries the genuine value and is not
  flagged. The run may start in ``history``;
* ``missing_bars`` — expected bars of the calendar are missing right before this bar (the gap
  is reported on the first bar after it; needs a calendar);
* ``zero_volume`` — volume is exactly zero in a session.

The first five are *impossible values* (:data:`IMPOSSIBLE_RULES`): a market cannot print them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from quant_pipelines.bench._legacy_quality._prepare import Prepared, prepare
from quant_pipelines.bench._legacy_quality.calendars import CalendarLike, bar_times

IMPOSSIBLE_RULES: tuple[str, ...] = (
    "non_positive_price",
    "non_finite_value",
    "inconsistent_ohlc",
    "negative_volume",
    "duplicate_bar",
)
"""Rules whose violation is an impossible value (severity ``critical``)."""

SUSPICIOUS_RULES: tuple[str, ...] = ("stale_price", "missing_bars", "zero_volume")
"""Rules whose violation is a likely feed error (severity ``warning``)."""

RULES: tuple[str, ...] = IMPOSSIBLE_RULES + SUSPICIOUS_RULES
"""All rule names, impossible values first."""

RULE_KINDS: dict[str, str] = {
    "non_positive_price": "non_positive_price",
    "non_finite_value": "non_positive_price",
    "inconsistent_ohlc": "ohlc_inconsistency",
    "negative_volume": "ohlc_inconsistency",
    "duplicate_bar": "duplicate_bar",
    "stale_price": "stale_price",
    "missing_bars": "missing_bars",
    "zero_volume": "zero_volume",
}
"""Anomaly kind (as in ``SyntheticSource`` labels) that each rule detects."""


def rule_flags(prep: Prepared) -> pd.DataFrame:
    """Boolean rule columns for a prepared batch (one row per batch row, original order).

    Args:
        prep: Output of :func:`quant_pipelines.quality._prepare.prepare`.

    Returns:
        Frame indexed like the batch with one bool column per rule in :data:`RULES` and an
        int column ``gap_before`` (expected bars missing right before the bar).
    """
    bars = prep.bars
    at = prep.row_to_frame
    gaps = np.zeros(len(prep.frame), dtype=np.int64)
    if len(prep.frame) > 1:
        steps = np.diff(prep.pos)
        gaps[1:] = np.maximum(np.floor(steps - 1.0 + 1e-9), 0).astype(np.int64)
    out = {name: prep.value_bad[name] for name in IMPOSSIBLE_RULES if name in prep.value_bad}
    out["duplicate_bar"] = bars.index.duplicated(keep=False)
    out["stale_price"] = prep.stale[at]
    out["missing_bars"] = gaps[at] > 0
    out["zero_volume"] = prep.value_bad["zero_volume"]
    frame = pd.DataFrame({name: np.asarray(out[name], dtype=bool) for name in RULES})
    frame["gap_before"] = gaps[at]
    frame.index = bars.index
    return frame


def check_rules(
    bars: pd.DataFrame,
    *,
    history: pd.DataFrame | None = None,
    calendar: CalendarLike | None = None,
    freq: str = "1D",
    stale_run: int = 5,
) -> pd.DataFrame:
    """Check a batch of one symbol's bars against the data-error rules.

    Args:
        bars: The batch (any order; duplicate rows are kept and flagged).
        history: Earlier bars, so that stale runs and gaps can start before the batch.
        calendar: Calendar, calendar name or asset class; enables ``missing_bars``.
        freq: Bar frequency.
        stale_run: Minimum number of identical closes that makes a stale run.

    Returns:
        Frame aligned to ``bars`` with one bool column per rule, ``gap_before`` and
        ``rules`` (the list of rule names broken by each row).
    """
    prep = prepare(bars, history=history, calendar=calendar, freq=freq, stale_run=stale_run)
    flags = rule_flags(prep)
    flags["rules"] = rules_list(flags)
    return flags


def rules_list(flags: pd.DataFrame) -> list[list[str]]:
    """The names of the rules each row broke, in :data:`RULES` order."""
    matrix = flags[list(RULES)].to_numpy(dtype=bool)
    names = np.array(RULES, dtype=object)
    return [names[row].tolist() for row in matrix]


def missing_bar_times(
    bars: pd.DataFrame,
    calendar: CalendarLike,
    *,
    freq: str = "1D",
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> pd.DatetimeIndex:
    """Expected bar times between ``start`` and ``end`` that ``bars`` lacks.

    Use it to record a gap that no bar can carry (e.g. at the end of a batch).

    Args:
        bars: Bars of one symbol.
        calendar: Calendar, calendar name or asset class.
        freq: Bar frequency.
        start: First instant to check (default: the first bar).
        end: Last instant to check (default: the last bar).

    Returns:
        Sorted UTC timestamps.
    """
    if len(bars) == 0 and (start is None or end is None):
        return pd.DatetimeIndex([], tz="UTC", name="ts")
    lo = pd.Timestamp(start) if start is not None else bars.index.min()
    hi = pd.Timestamp(end) if end is not None else bars.index.max()
    grid = bar_times(calendar, lo.tz_convert(None).normalize(), hi.tz_convert(None), freq=freq)
    grid = grid[(grid >= lo) & (grid <= hi)]
    return grid[~grid.isin(bars.index)]
