"""Cross-sectional market events: a move shared by many symbols of one asset class.

A data error hits one symbol; a market move (a crash, a central-bank surprise) hits many at
once. After each symbol is scored, :func:`mark_market_events` looks at every timestamp of an
asset class: when at least ``min_symbols`` symbols, and at least ``min_fraction`` of the
class's symbols scored at that timestamp, moved ``z`` trailing sigmas or more *in the same
direction*, those symbols' bars are labelled ``market_event`` and their statistical severity is
lowered one step (critical → warning → info). Rule violations keep their severity: an impossible
value is an error even on a market-wide day.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from quant_pipelines.quality.rules import IMPOSSIBLE_RULES, SUSPICIOUS_RULES
from quant_pipelines.quality.severity import combine_levels, level_names

MIN_SYMBOLS = 2
"""Fewest symbols that make a shared move."""

MIN_FRACTION = 0.5
"""Smallest share of the asset class's scored symbols that make a shared move."""

MOVE_Z = 3.0
"""Size of a move, in trailing sigmas (``|ret_z|``), that counts towards a shared move."""


def _rule_levels(rules: pd.Series) -> np.ndarray:
    impossible, suspicious = set(IMPOSSIBLE_RULES), set(SUSPICIOUS_RULES)
    return np.array(
        [2 if impossible & set(r) else 1 if suspicious & set(r) else 0 for r in rules],
        dtype=np.int64,
    )


def _shared_moves(
    frames: dict[str, pd.DataFrame], *, min_symbols: int, min_fraction: float, z: float
) -> dict[str, np.ndarray]:
    """Per symbol, a bool per row: the row's move is shared by the class."""
    moves = {}
    for name, frame in frames.items():
        first = frame[~frame.index.duplicated(keep="first")]
        ret = first["ret_z"].where(~first["warmup"].astype(bool))
        moves[name] = ret
    matrix = pd.DataFrame(moves)
    present = matrix.notna().sum(axis=1)
    up = (matrix >= z).sum(axis=1)
    down = (matrix <= -z).sum(axis=1)
    needed = np.maximum(min_symbols, np.ceil(min_fraction * present.to_numpy() - 1e-9))
    shared_up = up.to_numpy() >= needed
    shared_down = down.to_numpy() >= needed
    out = {}
    for name, frame in frames.items():
        col = matrix[name].to_numpy()
        hit = (shared_up & (col >= z)) | (shared_down & (col <= -z))
        hit_ts = matrix.index[hit]
        out[name] = frame.index.isin(hit_ts)
    return out


def mark_market_events(
    scores_by_symbol: Mapping[str, pd.DataFrame],
    asset_class_of: Mapping[str, str] | Callable[[str], str],
    *,
    min_symbols: int = MIN_SYMBOLS,
    min_fraction: float = MIN_FRACTION,
    z: float = MOVE_Z,
) -> dict[str, pd.DataFrame]:
    """Label moves shared across an asset class as market events and lower their severity.

    Args:
        scores_by_symbol: :func:`~quant_pipelines.quality.score_bars` output per symbol
            (columns ``ret_z``, ``warmup``, ``rules``, ``statistical_level``, ``severity``,
            ``flags``, ``kind``, ``market_event``).
        asset_class_of: Asset class of each symbol: a mapping, or a function such as
            ``lambda s: universe.get(s).asset_class``.
        min_symbols: Fewest symbols that make a shared move.
        min_fraction: Smallest share of the class's scored symbols at that timestamp.
        z: Move size in trailing sigmas.

    Returns:
        New frames (the inputs are not modified) with ``market_event`` set, ``severity``
        recomputed, ``"market_event"`` appended to ``flags``, and ``kind`` cleared where the
        bar is no longer flagged.
    """
    lookup = asset_class_of.__getitem__ if isinstance(asset_class_of, Mapping) else asset_class_of
    by_class: dict[str, dict[str, pd.DataFrame]] = {}
    for name, frame in scores_by_symbol.items():
        by_class.setdefault(lookup(name), {})[name] = frame
    out: dict[str, pd.DataFrame] = {}
    for frames in by_class.values():
        shared = _shared_moves(frames, min_symbols=min_symbols, min_fraction=min_fraction, z=z)
        for name, frame in frames.items():
            result = frame.copy()
            event = frame["market_event"].to_numpy(dtype=bool) | shared[name]
            rule = _rule_levels(frame["rules"])
            level = combine_levels(rule, frame["statistical_level"].to_numpy(), market_event=event)
            result["market_event"] = event
            result["severity"] = level_names(level)
            result["flags"] = [
                [*f, "market_event"] if e and "market_event" not in f else list(f)
                for f, e in zip(frame["flags"], event, strict=True)
            ]
            result["kind"] = np.where(level > 0, frame["kind"].to_numpy(), "")
            out[name] = result
    return {name: out[name] for name in scores_by_symbol}
