"""One-bar price jumps beyond what any session of the asset class produces, and possible splits.

Private to the quality package; the rule is ``price_jump`` (see :mod:`.rules`).

A bar *jumps* when a price (open, high, low or close) is more than ``bound`` times, or less than
``1 / bound`` times, the previous usable close, or when its close moves by a common split
ratio (within :data:`SPLIT_TOLERANCE`) and at least :data:`SPLIT_Z` trailing sigmas. The bar
after a jump is judged against both references: a bar back near the close before the jump is
the reversion of a bad print (not a jump), and a bar near the jump's close continues a new
level (a split or a unit change: flagged once, on its first bar).
"""

from __future__ import annotations

import numpy as np

from quant_pipelines.marketdata.calendars import ASSET_CLASS_CALENDARS, CalendarLike
from quant_pipelines.quality._prepare import Prepared
from quant_pipelines.quality._runs import previous_usable

JUMP_BOUNDS: dict[str, float] = {"equity": 3.0, "fx": 2.0, "crypto": 5.0}
"""Largest one-bar price ratio (up, or its inverse down) a genuine bar of the asset class
shows: no equity session triples or loses two thirds of a listed stock's price on the
exchange's own data without a corporate action; fx majors never halve in a day; crypto tokens
do move 3x, rarely 5x."""

DEFAULT_JUMP_BOUND = JUMP_BOUNDS["equity"]
"""Bound used when the asset class is unknown."""

SPLIT_RATIOS: tuple[tuple[int, int], ...] = (
    (2, 1),
    (3, 1),
    (3, 2),
    (4, 1),
    (5, 1),
    (10, 1),
    (1, 2),
    (1, 3),
    (2, 3),
    (1, 4),
    (1, 5),
    (1, 10),
)
"""Common splits ``new:old`` shares (``1:10`` is a reverse split); the price moves by
``old / new``."""

SPLIT_TOLERANCE = 0.05
"""Largest distance, in log price, between a move and a split ratio that still matches."""

SPLIT_Z = 10.0
"""Trailing sigmas from which a move matching a split ratio within the bound is a jump."""

_LOG_FACTORS = np.log(np.array([old / new for new, old in SPLIT_RATIOS], dtype="float64"))


def jump_bound_for(calendar_or_class: CalendarLike | None) -> float:
    """The jump bound of an asset class, or of the asset class a calendar belongs to.

    Args:
        calendar_or_class: ``"equity"``, ``"fx"``, ``"crypto"``, a calendar (name) of
            :data:`~quant_pipelines.marketdata.calendars.ASSET_CLASS_CALENDARS`, or None.

    Returns:
        The bound (``DEFAULT_JUMP_BOUND`` when the class is unknown).
    """
    if calendar_or_class is None:
        return DEFAULT_JUMP_BOUND
    name = calendar_or_class if isinstance(calendar_or_class, str) else calendar_or_class.name
    if name.lower() in JUMP_BOUNDS:
        return JUMP_BOUNDS[name.lower()]
    by_calendar = {cal: cls for cls, cal in ASSET_CLASS_CALENDARS.items()}
    return JUMP_BOUNDS.get(by_calendar.get(name, ""), DEFAULT_JUMP_BOUND)


def split_match(log_ratio: np.ndarray) -> np.ndarray:
    """Whether each log price ratio is within :data:`SPLIT_TOLERANCE` of a split ratio."""
    x = np.asarray(log_ratio, dtype="float64")[:, None]
    with np.errstate(invalid="ignore"):
        return (np.abs(x - _LOG_FACTORS[None, :]) <= SPLIT_TOLERANCE).any(axis=1)


def _candidates(
    prices: np.ndarray, ref: np.ndarray, scale: np.ndarray, *, bound: float, split_z: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(jump, split)`` of bars (``prices``: open, high, low, close columns) against ``ref``."""
    ok = np.isfinite(ref) & (ref > 0) & (np.isfinite(prices) & (prices > 0)).all(axis=1)
    safe_ref = np.where(ok, ref, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        logs = np.log(np.where(ok[:, None], prices, 1.0) / safe_ref[:, None])
        close_move = logs[:, 3]
        sigmas = np.abs(close_move) / np.where(scale > 0, scale, np.nan)
    far = np.abs(logs).max(axis=1) > np.log(bound)
    split = split_match(close_move)
    by_split = split & (np.nan_to_num(sigmas) >= split_z)
    return ok & (far | by_split), ok & split


def price_jumps(
    prep: Prepared, sigma: np.ndarray, *, bound: float, split_z: float = SPLIT_Z
) -> tuple[np.ndarray, np.ndarray]:
    """Price jumps of a prepared batch (one value per batch row).

    Args:
        prep: The prepared batch.
        sigma: Trailing volatility per frame row (``trailing_stats(prep)["sigma"]``).
        bound: Largest genuine one-bar price ratio (see :data:`JUMP_BOUNDS`).
        split_z: Trailing sigmas from which a split-ratio move within the bound is a jump.

    Returns:
        ``(jump, possible_split)`` bool arrays aligned to ``prep.bars``; a possible split is
        a jump whose close moved by a common split ratio.
    """
    prices = prep.frame_values[:, :4]
    close = prices[:, 3]
    prev = previous_usable(prep.usable)
    has = prev >= 0
    j = np.where(has, prev, 0)
    steps = np.maximum(np.where(has, prep.pos - prep.pos[j], 1.0), 1.0)
    scale = np.where(has, sigma[j], np.nan) * np.sqrt(steps)
    ref = np.where(has, close[j], np.nan)
    cand, _ = _candidates(prices, ref, scale, bound=bound, split_z=split_z)
    cand &= prep.usable
    jump = np.zeros(len(prices), dtype=bool)
    anchor = np.full(len(prices), np.nan)  # the close before the jump run
    for i in np.flatnonzero(cand):
        p = j[i]
        if jump[p]:
            back, _ = _candidates(
                prices[i : i + 1], anchor[p : p + 1], scale[i : i + 1], bound=bound, split_z=split_z
            )
            if not back[0]:
                continue  # back near the level before the jump: the bad print reverted
            anchor[i] = anchor[p]
        else:
            anchor[i] = close[p]
        jump[i] = True

    rows = prep.row_to_frame
    bars = prep.values[:, :4]
    row_prev = j[rows]
    row_ok = has[rows]
    row_cand, row_split = _candidates(
        bars, np.where(row_ok, close[row_prev], np.nan), scale[rows], bound=bound, split_z=split_z
    )
    after_jump = row_ok & jump[row_prev]
    if after_jump.any():
        ref = np.where(after_jump, anchor[row_prev], np.nan)
        back, _ = _candidates(bars, ref, scale[rows], bound=bound, split_z=split_z)
        row_cand &= ~after_jump | back
    return row_cand, row_cand & row_split
