"""From detector scores, rules and features to the score frame. Private to the quality package.

The verdict of a row (statistical level, severity, rules, flags, kind) depends on that row
alone, so it is computed once over the rows of every symbol of a batch and split afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from quant_pipelines.quality._kinds import assign_kinds
from quant_pipelines.quality.features import WINDOW
from quant_pipelines.quality.rules import RULES, rules_list
from quant_pipelines.quality.severity import (
    DEFAULT_THRESHOLDS,
    Thresholds,
    combine_levels,
    detector_flags,
    jump_level,
    level_names,
    rule_level,
    statistical_level,
)

FEATURE_COLUMNS: tuple[str, ...] = ("ret_z", "move_z", "gap_move_z", "range_z", "volume_z")
"""The main standardised features, copied from the feature frame."""

WARMUP_REASON = f"warm-up: the trailing statistics need {WINDOW + 1} usable bars before this one"
"""Why a bar in the features' warm-up has no statistical level."""

_RULE_KEYS = (*RULES, "possible_split", "gap_before")
_FEATURE_KEYS = ("move_z", "gap_move_z", "volume_z", "log_return", "session_fraction", "warmup")


@dataclass
class Detectors:
    """Detector scores of one symbol's batch rows, and rows without models (and why)."""

    iforest: np.ndarray
    prophet_price: np.ndarray
    prophet_volume: np.ndarray
    missing: np.ndarray
    reasons: list[str] = field(default_factory=list)

    @classmethod
    def empty(cls, n: int) -> Detectors:
        """Zero scores, every row with models."""
        return cls(np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool), [""] * n)


def _stack(arrays: Sequence[np.ndarray]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def verdict_frames(
    parts: Sequence[
        tuple[pd.DatetimeIndex, dict[str, np.ndarray], dict[str, np.ndarray], Detectors]
    ],
    thresholds: Thresholds | None,
) -> list[pd.DataFrame]:
    """The score frame of each part, computed over the rows of all parts at once.

    Args:
        parts: Per symbol: the batch index, its feature arrays, its rule arrays and its
            detector scores.
        thresholds: Calibrated thresholds; the defaults when None.

    Returns:
        One frame per part with ``scoring.SCORE_COLUMNS``.
    """
    if not parts:
        return []
    t = DEFAULT_THRESHOLDS if thresholds is None else thresholds
    feats = {k: _stack([p[1][k] for p in parts]) for k in (*FEATURE_COLUMNS, *_FEATURE_KEYS)}
    flags = {k: _stack([p[2][k] for p in parts]) for k in _RULE_KEYS}
    det = [p[3] for p in parts]
    iforest = _stack([d.iforest for d in det])
    price = _stack([d.prophet_price for d in det])
    volume = _stack([d.prophet_volume for d in det])
    feature_warmup = np.asarray(feats["warmup"], dtype=bool)
    warmup = feature_warmup | _stack([d.missing for d in det])
    reasons = [r for d in det for r in d.reasons]
    reasons = [WARMUP_REASON if w else r for w, r in zip(feature_warmup, reasons, strict=True)]
    stat = statistical_level(iforest, price, volume, t, warmup=warmup)
    level = combine_levels(rule_level(flags), stat, jump=jump_level(flags))
    rules = rules_list(flags)
    above = detector_flags(iforest, price, volume, t)
    names = list(above)
    fired = np.column_stack(list(above.values())) & ~warmup[:, None]
    kinds = assign_kinds(
        rules,
        possible_split=np.asarray(flags["possible_split"], dtype=bool),
        statistical=stat,
        fired={k: fired[:, i] for i, k in enumerate(names)},
        feats=feats,
    )
    any_fired = fired.any(axis=1).tolist()
    flag_lists = [
        r + [names[i] for i in np.flatnonzero(f)] if hit else list(r)
        for r, f, hit in zip(rules, fired, any_fired, strict=True)
    ]
    columns = {
        "iforest": iforest,
        "prophet": np.maximum(price, volume),
        "prophet_price": price,
        "prophet_volume": volume,
        "severity": level_names(level),
        "rules": rules,
        "flags": flag_lists,
        "kind": kinds,
        "market_event": np.zeros(len(iforest), dtype=bool),
        "warmup": warmup,
        "gap_before": flags["gap_before"],
        **{col: feats[col] for col in FEATURE_COLUMNS},
        "statistical_level": stat,
        "log_return": feats["log_return"],
        "session_fraction": feats["session_fraction"],
        "warmup_reason": reasons,
    }
    if len(parts) == 1:
        return [pd.DataFrame(columns, index=parts[0][0])]
    whole = pd.DataFrame(columns)  # one frame for the batch, then a slice per symbol
    frames, start = [], 0
    for index, *_ in parts:
        stop = start + len(index)
        frames.append(whole.iloc[start:stop].set_axis(index, axis=0))
        start = stop
    return frames
