"""Rules for data errors: deterministic checks that need no model.

Rule names (the values of the ``rules`` column of :func:`~quant_pipelines.quality.score_bars`)
and the value checks come from :mod:`quant_pipelines.marketdata.validate`, the one vocabulary
that ingest validation uses too:

* ``non_positive_price`` — a price (open, high, low or close) is ``<= 0``;
* ``non_finite_value`` — a price or the volume is NaN or infinite;
* ``inconsistent_ohlc`` — ``high < max(open, close, low)`` or ``low > min(open, close)``;
* ``negative_volume`` — volume ``< 0``;
* ``duplicate_bar`` — the timestamp appears more than once (every row of it is flagged);
* ``price_jump`` — a price is more than ``jump_bound`` times (or less than ``1 / jump_bound``
  times) the previous usable close (default 3 for equities, see
  :data:`~quant_pipelines.quality._jumps.JUMP_BOUNDS`), or the close moved by a common split
  ratio and at least 10 trailing sigmas; the bar after it is judged against the close before
  the jump too, so a bad print's reversion is not a jump and a new level is flagged once;
* ``stale_price`` — the run of identical closes up to and including this bar is at least
  ``stale_run`` (default 5) long: causal, from the bar that makes the run ``stale_run`` long
  on (earlier bars of the run are never flagged retroactively). The run may start in
  ``history``;
* ``missing_bars`` — expected bars of the calendar are missing right before this bar (the gap
  is reported on the first bar after it; needs a calendar);
* ``zero_volume`` — volume is exactly zero in a session.

The first five are *impossible values* (:data:`IMPOSSIBLE_RULES`): a market cannot print them.
``price_jump`` (:data:`JUMP_RULES`) is critical too, unless the asset class made the same move
(see :func:`~quant_pipelines.quality.mark_market_events`). The last three
(:data:`SUSPICIOUS_RULES`) are feed errors that leave no wrong number in the series (a repeat,
a gap, no trades) and that a genuine market can produce (a halted stock): warnings, however
long the run or the gap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from quant_pipelines.marketdata.calendars import CalendarLike, bar_times
from quant_pipelines.marketdata.validate import (
    DUPLICATE_BAR,
    INCONSISTENT_OHLC,
    MISSING_BARS,
    NEGATIVE_VOLUME,
    NON_FINITE_VALUE,
    NON_POSITIVE_PRICE,
    PRICE_JUMP,
    STALE_PRICE,
    ZERO_VOLUME,
)
from quant_pipelines.quality._jumps import SPLIT_Z, jump_bound_for, price_jumps
from quant_pipelines.quality._prepare import Prepared, impossible, prepare
from quant_pipelines.quality.features import trailing_stats

IMPOSSIBLE_RULES: tuple[str, ...] = (
    NON_POSITIVE_PRICE,
    NON_FINITE_VALUE,
    INCONSISTENT_OHLC,
    NEGATIVE_VOLUME,
    DUPLICATE_BAR,
)
"""Rules whose violation is an impossible value (severity ``critical``)."""

JUMP_RULES: tuple[str, ...] = (PRICE_JUMP,)
"""Rules of a move no genuine bar makes alone (``critical``, unless the asset class shares it)."""

SUSPICIOUS_RULES: tuple[str, ...] = (STALE_PRICE, MISSING_BARS, ZERO_VOLUME)
"""Rules whose violation is a likely feed error (severity ``warning``)."""

RULES: tuple[str, ...] = IMPOSSIBLE_RULES + JUMP_RULES + SUSPICIOUS_RULES
"""All rule names, most severe first."""

RULE_KINDS: dict[str, str] = {
    NON_POSITIVE_PRICE: "non_positive_price",
    NON_FINITE_VALUE: "non_positive_price",
    INCONSISTENT_OHLC: "ohlc_inconsistency",
    NEGATIVE_VOLUME: "ohlc_inconsistency",
    DUPLICATE_BAR: "duplicate_bar",
    PRICE_JUMP: "price_jump",
    STALE_PRICE: "stale_price",
    MISSING_BARS: "missing_bars",
    ZERO_VOLUME: "zero_volume",
}
"""Anomaly kind (as in ``SyntheticSource`` labels) that each rule detects."""


def rule_arrays(
    prep: Prepared,
    *,
    sigma: np.ndarray | None = None,
    jump_bound: float | None = None,
    split_z: float = SPLIT_Z,
) -> dict[str, np.ndarray]:
    """The columns of :func:`rule_flags` as arrays (no frame is built)."""
    at = prep.row_to_frame
    gaps = np.zeros(len(prep.frame_index), dtype=np.int64)
    if len(prep.frame_index) > 1:
        steps = np.diff(prep.pos)
        gaps[1:] = np.maximum(np.floor(steps - 1.0 + 1e-9), 0).astype(np.int64)
    out = {name: prep.value_bad[name] for name in IMPOSSIBLE_RULES if name in prep.value_bad}
    out[DUPLICATE_BAR] = prep.index.duplicated(keep=False)
    sigma = trailing_stats(prep)["sigma"] if sigma is None else sigma
    bound = jump_bound_for(None) if jump_bound is None else jump_bound
    jump, split = price_jumps(prep, sigma, bound=bound, split_z=split_z)
    jump &= ~impossible(prep.value_bad)
    out[PRICE_JUMP] = jump
    out[STALE_PRICE] = prep.stale[at]
    out[MISSING_BARS] = gaps[at] > 0
    out[ZERO_VOLUME] = prep.value_bad[ZERO_VOLUME]
    flags = {name: np.asarray(out[name], dtype=bool) for name in RULES}
    flags["gap_before"] = gaps[at]
    flags["possible_split"] = jump & split
    return flags


def rule_flags(
    prep: Prepared,
    *,
    sigma: np.ndarray | None = None,
    jump_bound: float | None = None,
    split_z: float = SPLIT_Z,
) -> pd.DataFrame:
    """Boolean rule columns for a prepared batch (one row per batch row, original order).

    Args:
        prep: Output of :func:`quant_pipelines.quality._prepare.prepare`.
        sigma: Trailing volatility per frame row (computed when None).
        jump_bound: Largest genuine one-bar price ratio (equity default when None).
        split_z: Trailing sigmas from which a split-ratio move within the bound is a jump.

    Returns:
        Frame indexed like the batch with one bool column per rule in :data:`RULES`, an int
        column ``gap_before`` (expected bars missing right before the bar) and a bool column
        ``possible_split`` (the jump matches a common split ratio).
    """
    flags = rule_arrays(prep, sigma=sigma, jump_bound=jump_bound, split_z=split_z)
    return pd.DataFrame(flags, index=prep.index)


def check_rules(
    bars: pd.DataFrame,
    *,
    history: pd.DataFrame | None = None,
    calendar: CalendarLike | None = None,
    freq: str = "1D",
    stale_run: int = 5,
    jump_bound: float | None = None,
    symbol: str | None = None,
) -> pd.DataFrame:
    """Check a batch of one symbol's bars against the data-error rules.

    Args:
        bars: The batch (any order; duplicate rows are kept and flagged).
        history: Earlier bars, so that stale runs, jumps and gaps can start before the batch.
        calendar: Calendar, calendar name or asset class; enables ``missing_bars`` and sets
            the default ``jump_bound`` of its asset class.
        freq: Bar frequency.
        stale_run: Number of identical closes that makes a stale run.
        jump_bound: Largest genuine one-bar price ratio (default: the calendar's asset class).
        symbol: Named in error messages.

    Returns:
        Frame aligned to ``bars`` with one bool column per rule, ``gap_before``,
        ``possible_split`` and ``rules`` (the list of rule names broken by each row).

    Raises:
        ValueError: If a bar lies outside the calendar's sessions.
    """
    prep = prepare(
        bars, history=history, calendar=calendar, freq=freq, stale_run=stale_run, symbol=symbol
    )
    bound = jump_bound_for(calendar) if jump_bound is None else jump_bound
    flags = rule_flags(prep, jump_bound=bound)
    flags["rules"] = rules_list(flags)
    return flags


def rules_list(flags: pd.DataFrame | dict[str, np.ndarray]) -> list[list[str]]:
    """The names of the rules each row broke, in :data:`RULES` order."""
    matrix = np.column_stack([np.asarray(flags[name], dtype=bool) for name in RULES])
    out: list[list[str]] = [[] for _ in range(len(matrix))]
    for row, col in zip(*np.nonzero(matrix), strict=True):  # row-major: RULES order per row
        out[row].append(RULES[col])
    return out


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
