"""When the portfolio engine trades: on target changes, on a calendar, or on a drift band.

* ``"on_change"`` (the default): a symbol trades at its next open when its target weight
  changes, as :func:`~quant_pipelines.backtest.run_backtest` does for one instrument; between
  changes its units are held and its weight drifts with prices.
* ``"daily"``, ``"weekly"``, ``"monthly"``: on the first bar of the data and on the first bar of
  each calendar week (Monday-based) / month (UTC dates), every symbol trades back to that
  bar's target weights at its next open; the rows in between are not read. The first bar of a
  period is known to be one at its own close, so the schedule needs no future timestamp.
* :class:`DriftBand`: at every close, if some symbol's held weight differs from its latest
  target weight by more than the band, every symbol trades back to the targets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from quant_pipelines.backtest.portfolio._kernel import DRIFT, ON_CHANGE, SCHEDULE

CALENDAR_RULES: tuple[str, ...] = ("daily", "weekly", "monthly")
REBALANCE_RULES: tuple[str, ...] = ("on_change", *CALENDAR_RULES)
"""Rebalance rules given by name (a :class:`DriftBand` is the other kind)."""


@dataclass(frozen=True)
class DriftBand:
    """Rebalance when some weight drifts more than ``threshold`` from its target.

    Attributes:
        threshold: Absolute weight difference (0.05 = five percentage points), > 0.
    """

    threshold: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold) and self.threshold > 0.0):
            raise ValueError(
                f"DriftBand threshold must be a positive number, got {self.threshold!r}"
            )


Rebalance = str | DriftBand


def rebalance_plan(index: pd.Index, rebalance: Rebalance) -> tuple[int, np.ndarray, float]:
    """The kernel's mode, scheduled decision bars and band for a rebalance rule.

    Args:
        index: The union of sessions.
        rebalance: A name of :data:`REBALANCE_RULES` or a :class:`DriftBand`.

    Returns:
        ``(mode, decide, band)``: ``decide[t]`` marks the bars whose close is a scheduled
        rebalance (all False unless the rule is a calendar one).

    Raises:
        ValueError: For an unknown rule, or a calendar rule on an index without dates.
    """
    n = len(index)
    none = np.zeros(n, dtype=np.bool_)
    if isinstance(rebalance, DriftBand):
        return DRIFT, none, float(rebalance.threshold)
    if not isinstance(rebalance, str) or rebalance not in REBALANCE_RULES:
        raise ValueError(
            f"unknown rebalance rule {rebalance!r}; use one of {list(REBALANCE_RULES)} "
            "or DriftBand(threshold)"
        )
    if rebalance == "on_change":
        return ON_CHANGE, none, 0.0
    return SCHEDULE, calendar_mask(index, rebalance), 0.0


def calendar_mask(index: pd.Index, rule: str) -> np.ndarray:
    """The bars that start a calendar period: the one definition of the calendar rules.

    The portfolio engine's schedule and the portfolio strategies' rebalance dates
    (``_xs_panel.rebalance_mask``) both come from here. A bar is known to start its period
    at its own close, so the mask reads no future timestamp.

    Args:
        index: The bars' timestamps.
        rule: ``"daily"`` (every bar), ``"weekly"`` or ``"monthly"`` (the first bar and the
            first bar of each calendar week, Monday-based, or month, in UTC dates).

    Returns:
        A boolean array, one value per bar.

    Raises:
        ValueError: For a rule not in :data:`CALENDAR_RULES`, or weekly / monthly on an index
            without dates.
    """
    if rule not in CALENDAR_RULES:
        raise ValueError(f"unknown calendar rule {rule!r}; use one of {list(CALENDAR_RULES)}")
    n = len(index)
    if rule == "daily" or n == 0:
        return np.ones(n, dtype=np.bool_)
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(f"rebalance={rule!r} needs bars on a DatetimeIndex")
    naive = index.tz_convert("UTC").tz_localize(None) if index.tz is not None else index
    if rule == "weekly":
        days = naive.to_numpy().astype("datetime64[D]").astype(np.int64)
        key = (days + 3) // 7  # 1970-01-01 was a Thursday: weeks start on Mondays
    else:
        key = np.asarray(naive.year * 12 + naive.month)
    decide = np.ones(n, dtype=np.bool_)
    decide[1:] = key[1:] != key[:-1]
    return decide
