"""Cross-sectional market events: a move shared across one asset class.

A data error hits one symbol; a market move (a crash, a flash crash, a central-bank surprise)
hits the class at once. After each symbol is scored, :func:`mark_market_events` looks at every
timestamp of an asset class, on three standardised moves of each bar: the return (``ret_z``,
either direction), the session-scaled range (``range_z``) and volume (``volume_z``), upwards.

*Shared* is judged robustly: at each timestamp, the class's move in a direction is the value
that at least half of the class's scored symbols (and at least ``min_symbols``) reach — the
``k``-th largest (or smallest) value, ``k = max(min_symbols, ceil(min_fraction * n))``. The move
is shared when that value is beyond the dimension's threshold (:data:`SHARED`). One symbol's
error cannot make it so, however large, and a class of two needs both symbols to move.

A bar is a ``market_event`` when its class shares a move at that timestamp, the bar takes part
in it (moves at least half the threshold in that direction), and each of its own unusual moves
is explained by the class: shared in the same direction and at most :data:`EXPLAIN_RATIO` times
the class's move (a ``price_jump`` also needs its log return within half the class's). Such a
bar is ``info``: its statistical level and a shared jump are cleared; other rules keep their
level (an impossible value is an error even on a market-wide day).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from quant_pipelines.quality._robust import nanmedian_rows
from quant_pipelines.quality.rules import IMPOSSIBLE_RULES, RULE_KINDS, SUSPICIOUS_RULES
from quant_pipelines.quality.severity import combine_levels, level_names, rule_name_levels

MIN_SYMBOLS = 2
"""Fewest symbols that make a shared move."""

MIN_FRACTION = 0.5
"""Share of the asset class's scored symbols that must reach the class's move."""

SHARED: dict[str, float] = {"ret_z": 2.5, "range_z": 0.7, "volume_z": 2.5}
"""Threshold per standardised move: trailing sigmas for returns and log volume, log of the
range over its trailing mean for the range (0.7: twice the usual range)."""

TWO_SIDED: frozenset[str] = frozenset({"ret_z"})
"""Moves shared in both directions; range and volume count upwards only: a class-wide quiet
day is no event, and a class-wide volume *drop* is more likely a feed delivering partial
volume than a market move, so it stays an alert."""

EXPLAIN_RATIO = 3.0
"""A symbol's own move is explained by the class's when it is at most this multiple of it."""


def _kth(matrix: np.ndarray, k: np.ndarray, *, largest: bool) -> np.ndarray:
    """Per row, the ``k``-th largest (or smallest) finite value; NaN with fewer than ``k``."""
    filled = np.where(np.isfinite(matrix), matrix, -np.inf if largest else np.inf)
    ordered = -np.sort(-filled, axis=1) if largest else np.sort(filled, axis=1)
    rows = np.arange(len(matrix))
    idx = np.clip(k - 1, 0, max(matrix.shape[1] - 1, 0))
    out = ordered[rows, idx] if matrix.shape[1] else np.full(len(matrix), np.nan)
    return np.where(np.isfinite(out) & (k <= np.isfinite(matrix).sum(axis=1)), out, np.nan)


def _events(
    frames: dict[str, pd.DataFrame], *, min_symbols: int, min_fraction: float
) -> dict[str, np.ndarray]:
    """Per symbol, a bool per row: the row is a market event."""
    names = list(frames)
    index = {n: pd.DatetimeIndex(frames[n].index).as_unit("ns").asi8 for n in names}
    # each symbol's first row per timestamp, in row order (later duplicates repeat it)
    firsts = {n: np.unique(index[n], return_index=True)[1] for n in names}
    stamps = np.unique(np.concatenate([index[n] for n in names])) if names else np.zeros(0)
    if len(names) < min_symbols or len(stamps) == 0:
        return {n: np.zeros(len(f), dtype=bool) for n, f in frames.items()}
    at_first = {n: np.searchsorted(stamps, index[n][firsts[n]]) for n in names}

    warm = {n: frames[n]["warmup"].to_numpy(dtype=bool)[firsts[n]] for n in names}

    def matrix(col: str) -> np.ndarray:
        out = np.full((len(stamps), len(names)), np.nan)
        for i, n in enumerate(names):
            if col in frames[n]:
                values = frames[n][col].to_numpy(dtype="float64")[firsts[n]]
                out[at_first[n], i] = np.where(warm[n], np.nan, values)
        return out

    ok = np.ones((len(stamps), len(names)), dtype=bool)
    takes_part = np.zeros_like(ok)
    up_moves: dict[str, np.ndarray] = {}
    for col, theta in SHARED.items():
        x = matrix(col)
        n = np.isfinite(x).sum(axis=1)
        k = np.maximum(min_symbols, np.ceil(min_fraction * n - 1e-9)).astype(np.int64)
        up, down = _kth(x, k, largest=True), _kth(x, k, largest=False)
        up_ok = (np.nan_to_num(up) >= theta)[:, None]
        down_ok = (np.nan_to_num(down) <= -theta)[:, None] & (col in TWO_SIDED)
        up_moves[col] = np.where(up_ok[:, 0], up, np.where(down_ok[:, 0], down, np.nan))
        with np.errstate(invalid="ignore"):
            high, low = x >= theta, x <= -theta
            explained = (~high | (up_ok & (x <= EXPLAIN_RATIO * up[:, None]))) & (
                ~low | (down_ok & (x >= EXPLAIN_RATIO * down[:, None]))
            )
            takes_part |= (up_ok & (x >= theta / 2)) | (down_ok & (x <= -theta / 2))
        ok &= explained | ~np.isfinite(x)
    lr = matrix("log_return")
    class_lr = nanmedian_rows(np.where(np.isfinite(lr), lr, np.nan))
    event = ok & takes_part
    with np.errstate(invalid="ignore"):
        jump_ok = (np.abs(lr - class_lr[:, None]) <= 0.5 * np.abs(class_lr)[:, None]) & (
            np.isfinite(up_moves["ret_z"])[:, None]
        )
    out = {}
    for i, name in enumerate(names):
        at = np.searchsorted(stamps, index[name])
        has_jump = np.array(["price_jump" in r for r in frames[name]["rules"]], dtype=bool)
        out[name] = event[at, i] & (~has_jump | jump_ok[at, i])
    return out


def mark_market_events(
    scores_by_symbol: Mapping[str, pd.DataFrame],
    asset_class_of: Mapping[str, str] | Callable[[str], str],
    *,
    min_symbols: int = MIN_SYMBOLS,
    min_fraction: float = MIN_FRACTION,
) -> dict[str, pd.DataFrame]:
    """Label moves shared across an asset class as market events (severity ``info``).

    Args:
        scores_by_symbol: :func:`~quant_pipelines.quality.score_bars` output per symbol
            (columns ``ret_z``, ``range_z``, ``volume_z``, ``log_return``, ``warmup``,
            ``rules``, ``statistical_level``, ``severity``, ``flags``, ``kind``,
            ``market_event``).
        asset_class_of: Asset class of each symbol: a mapping, or a function such as
            ``lambda s: universe.get(s).asset_class``.
        min_symbols: Fewest symbols that make a shared move.
        min_fraction: Share of the class's scored symbols that must reach the class's move.

    Returns:
        New frames (the inputs are not modified) with ``market_event`` set, ``severity``
        recomputed (the statistical level and a shared ``price_jump`` cleared),
        ``"market_event"`` appended to ``flags``, and ``kind`` set to ``market_event`` where
        the bar ends at ``info`` (to the remaining rule's kind where a rule keeps it up).
    """
    lookup = asset_class_of.__getitem__ if isinstance(asset_class_of, Mapping) else asset_class_of
    by_class: dict[str, dict[str, pd.DataFrame]] = {}
    for name, frame in scores_by_symbol.items():
        by_class.setdefault(lookup(name), {})[name] = frame
    out: dict[str, pd.DataFrame] = {}
    for frames in by_class.values():
        shared = _events(frames, min_symbols=min_symbols, min_fraction=min_fraction)
        for name, frame in frames.items():
            event = frame["market_event"].to_numpy(dtype=bool) | shared[name]
            rule, jump = rule_name_levels(frame["rules"])
            stat = frame["statistical_level"].to_numpy()
            level = combine_levels(rule, stat, market_event=event, jump=jump)
            severity = level_names(level)
            if not event.any() and np.array_equal(
                severity, frame["severity"].to_numpy(dtype=object)
            ):
                out[name] = frame.copy()  # nothing to mark: the same values as below
                continue
            result = frame.copy()
            result["market_event"] = event
            result["severity"] = severity
            result["flags"] = [
                [*f, "market_event"] if e and "market_event" not in f else list(f)
                for f, e in zip(frame["flags"], event, strict=True)
            ]
            kinds = frame["kind"].to_numpy(dtype=object).copy()
            for i in np.flatnonzero(event):
                names = frame["rules"].iloc[i]
                kept = [r for r in names if r in IMPOSSIBLE_RULES or r in SUSPICIOUS_RULES]
                kinds[i] = RULE_KINDS[kept[0]] if level[i] > 0 and kept else "market_event"
            result["kind"] = kinds
            out[name] = result
    return {name: out[name] for name in scores_by_symbol}
