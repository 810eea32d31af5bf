"""The most likely kind of anomaly behind a bar's severity. Private to the quality package.

Kinds (the ``kind`` column of :func:`~quant_pipelines.quality.score_bars`):

* the rule kinds of :data:`~quant_pipelines.quality.rules.RULE_KINDS`
  (``non_positive_price``, ``ohlc_inconsistency``, ``duplicate_bar``, ``stale_price``,
  ``missing_bars``, ``zero_volume``);
* ``price_jump`` — a one-bar move beyond the asset class's bound; ``possible_split`` when it
  matches a common split ratio;
* ``price_spike`` — the Isolation Forest fired and the price move is the more extreme feature;
* ``volume_burst`` / ``volume_drop`` — the forest fired on the volume, or the Prophet volume
  model alone: above / below the usual volume (the sign of ``volume_z``);
* ``price_level`` — the Prophet price model alone (the price left its band);
* ``market_event`` — set by :func:`~quant_pipelines.quality.mark_market_events` on a shared
  move that leaves the bar at ``info``;
* ``""`` — nothing raised.

The kind follows the cause of the bar's level: an impossible value first, then a jump, then
whichever of the detectors and the feed-error rules set the level (the rule on a tie).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from quant_pipelines.quality.rules import IMPOSSIBLE_RULES, RULE_KINDS, SUSPICIOUS_RULES


def volume_kind(volume_z: np.ndarray) -> np.ndarray:
    """``volume_burst`` where volume is above its usual level, ``volume_drop`` below."""
    return np.where(np.nan_to_num(volume_z) < 0, "volume_drop", "volume_burst")


def statistical_kinds(
    fired: dict[str, np.ndarray], feats: pd.DataFrame | Mapping[str, np.ndarray]
) -> np.ndarray:
    """The kind each detector verdict points at (see the module docstring)."""
    price = np.maximum(
        np.abs(np.nan_to_num(np.asarray(feats["move_z"]))),
        np.abs(np.nan_to_num(np.asarray(feats["gap_move_z"]))),
    )
    volume_z = np.asarray(feats["volume_z"])
    volume = volume_kind(volume_z)
    forest = np.where(price >= np.abs(np.nan_to_num(volume_z)), "price_spike", volume)
    return np.where(
        fired["iforest"], forest, np.where(fired["prophet_volume"], volume, "price_level")
    )


def first_rule_kind(rules: list[str], group: tuple[str, ...]) -> str:
    """Kind of the first rule of ``group`` in ``rules`` ("" when none)."""
    for name in rules:
        if name in group:
            return RULE_KINDS[name]
    return ""


def assign_kinds(
    rules: list[list[str]],
    *,
    possible_split: np.ndarray,
    statistical: np.ndarray,
    fired: dict[str, np.ndarray],
    feats: pd.DataFrame | Mapping[str, np.ndarray],
) -> np.ndarray:
    """Most likely kind per bar.

    Args:
        rules: Rule names broken per bar.
        possible_split: Per bar, the jump matches a split ratio.
        statistical: Statistical level per bar (0-2).
        fired: Per detector, at or above its warning threshold.
        feats: Features of the bars (``move_z``, ``gap_move_z``, ``volume_z``).

    Returns:
        Object array of kind names ("" where nothing was raised).
    """
    stat_kind = statistical_kinds(fired, feats)
    out = np.full(len(rules), "", dtype=object)
    raised = np.asarray(statistical) > 0
    for i, names in enumerate(rules):
        if not names and not raised[i]:
            continue  # no rule broken, below every threshold: no kind
        hard = first_rule_kind(names, IMPOSSIBLE_RULES)
        feed = first_rule_kind(names, SUSPICIOUS_RULES)
        if hard:
            out[i] = hard
        elif "price_jump" in names:
            out[i] = "possible_split" if possible_split[i] else "price_jump"
        elif statistical[i] > (1 if feed else 0):
            out[i] = stat_kind[i]
        elif feed:
            out[i] = feed
    return out
