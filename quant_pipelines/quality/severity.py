"""Severity levels and the mapping from rules and detector scores to a level.

The mapping (documented in ``docs/quality.md``):

* **critical** — an impossible value (any rule of
  :data:`~quant_pipelines.quality.rules.IMPOSSIBLE_RULES`: non-positive or non-finite price,
  inconsistent OHLC, negative volume, duplicate bar), a ``price_jump`` (a one-bar move beyond
  the asset class's bound, or a split-ratio move), or a statistical outlier on which *both*
  detectors agree far beyond their thresholds: ``iforest >= iforest_critical`` **and** one of
  the Prophet models beyond its critical threshold (``prophet_price >= prophet_price_critical``
  or ``prophet_volume >= prophet_volume_critical``);
* **warning** — a likely feed error (stale run, missing bars, zero volume: never critical, as
  they leave no wrong number in the series and a halted market produces them), or a statistical
  outlier on *either* detector: the Isolation Forest or one of the two Prophet models at or
  above its warning threshold;
* **info** — everything else (the bar is scored and stored, nothing is raised).

A ``market_event`` (a move shared across the asset class) is ``info``: it clears the
*statistical* level and a ``price_jump`` the class shares; the other rules keep their level.
Bars in the features' warm-up, or without fitted models, get no statistical level.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from quant_pipelines.quality.rules import IMPOSSIBLE_RULES, JUMP_RULES, SUSPICIOUS_RULES

SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
"""Severity levels, lowest first (the position is the numeric level)."""


@dataclass(frozen=True)
class Thresholds:
    """Score thresholds of one calibration.

    The Prophet thresholds are distances outside the interval, in interval widths; the price
    and the volume model have their own, as their distances are distributed very differently
    (a random-walk price drifts out of its band, volume mostly stays inside).

    Attributes:
        iforest_warning: Isolation Forest score at or above which a bar is a warning.
        prophet_price_warning: Price-model distance at or above which a bar is a warning.
        prophet_volume_warning: Volume-model distance at or above which a bar is a warning.
        iforest_critical: Isolation Forest score needed for a statistical critical.
        prophet_price_critical: Price-model distance that (with ``iforest_critical``) makes it
            critical.
        prophet_volume_critical: Volume-model distance that (with ``iforest_critical``) makes
            it critical.
        version: Identifier of the calibration (see
            :func:`~quant_pipelines.quality.calibrate_thresholds`).
        n_bars: Number of clean bars the calibration was measured on (0 for defaults).
        warning_rate: Target share of clean bars at warning or above.
        critical_rate: Target share of clean bars at critical.
    """

    iforest_warning: float
    prophet_price_warning: float
    prophet_volume_warning: float
    iforest_critical: float
    prophet_price_critical: float
    prophet_volume_critical: float
    version: str = "default"
    n_bars: int = 0
    warning_rate: float = float("nan")
    critical_rate: float = float("nan")

    def __post_init__(self) -> None:
        for name in ("iforest", "prophet_price", "prophet_volume"):
            if getattr(self, f"{name}_critical") < getattr(self, f"{name}_warning"):
                raise ValueError(f"{name}_critical must be >= {name}_warning")

    def to_dict(self) -> dict[str, Any]:
        """A JSON/BSON-ready dict (e.g. for an ``anomaly_thresholds`` document)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Thresholds:
        """Rebuild from :meth:`to_dict` output (unknown keys such as ``_id`` are ignored)."""
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in doc.items() if k in fields})

    def with_version(self, prefix: str) -> Thresholds:
        """A copy whose version is ``f"{prefix}-{content hash}"`` (same values ⇒ same version)."""
        values = {k: v for k, v in self.to_dict().items() if k != "version"}
        digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:8]
        return replace(self, version=f"{prefix}-{digest}")


DEFAULT_THRESHOLDS = Thresholds(
    iforest_warning=0.72,
    prophet_price_warning=1.28,
    prophet_volume_warning=0.42,
    iforest_critical=0.795,
    prophet_price_critical=1.78,
    prophet_volume_critical=0.92,
    version="default",
)
"""Used when no calibration is available: the median of the six per-asset-class calibrations
(2% warning, 0.2% critical) of the evaluation runs with seeds 0 and 1 (``docs/quality.md``)."""


def _any(rules: pd.DataFrame | Mapping[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray:
    return np.logical_or.reduce([np.asarray(rules[name], dtype=bool) for name in names])


def rule_level(rules: pd.DataFrame | Mapping[str, np.ndarray]) -> np.ndarray:
    """Level of the rules a market event cannot lower: 2 for an impossible value, 1 for a feed
    error (``price_jump`` is :func:`jump_level`). ``rules``: rule columns (frame or arrays)."""
    impossible = _any(rules, IMPOSSIBLE_RULES)
    suspicious = _any(rules, SUSPICIOUS_RULES)
    return np.where(impossible, 2, np.where(suspicious, 1, 0))


def jump_level(rules: pd.DataFrame | Mapping[str, np.ndarray]) -> np.ndarray:
    """Level of the ``price_jump`` rule: 2 where it fired (lowered only by a market event)."""
    return np.where(_any(rules, JUMP_RULES), 2, 0)


def rule_name_levels(rules: pd.Series | list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """``(rule_level, jump_level)`` from lists of rule names (a score frame's ``rules``)."""
    impossible, jumps, suspicious = set(IMPOSSIBLE_RULES), set(JUMP_RULES), set(SUSPICIOUS_RULES)
    fixed = [2 if impossible & set(r) else 1 if suspicious & set(r) else 0 for r in rules]
    jump = [2 if jumps & set(r) else 0 for r in rules]
    return np.array(fixed, dtype=np.int64), np.array(jump, dtype=np.int64)


def detector_flags(
    iforest: np.ndarray,
    prophet_price: np.ndarray,
    prophet_volume: np.ndarray,
    thresholds: Thresholds,
    *,
    level: str = "warning",
) -> dict[str, np.ndarray]:
    """Per detector, whether each bar is at or above its ``level`` threshold."""
    t = thresholds
    scores = {"iforest": iforest, "prophet_price": prophet_price, "prophet_volume": prophet_volume}
    return {
        name: np.asarray(values, dtype="float64") >= getattr(t, f"{name}_{level}")
        for name, values in scores.items()
    }


def statistical_level(
    iforest: np.ndarray,
    prophet_price: np.ndarray,
    prophet_volume: np.ndarray,
    thresholds: Thresholds,
    *,
    warmup: np.ndarray | None = None,
) -> np.ndarray:
    """Level implied by the detector scores (0, 1 or 2); warm-up bars get 0."""
    scores = (iforest, prophet_price, prophet_volume)
    warn = detector_flags(*scores, thresholds)
    crit = detector_flags(*scores, thresholds, level="critical")
    warning = warn["iforest"] | warn["prophet_price"] | warn["prophet_volume"]
    critical = crit["iforest"] & (crit["prophet_price"] | crit["prophet_volume"])
    level = np.where(critical, 2, np.where(warning, 1, 0))
    if warmup is not None:
        level = np.where(np.asarray(warmup, dtype=bool), 0, level)
    return level


def combine_levels(
    rule: np.ndarray,
    statistical: np.ndarray,
    *,
    market_event: np.ndarray | None = None,
    jump: np.ndarray | None = None,
) -> np.ndarray:
    """The bar's level: the highest of the rule, jump and statistical levels.

    A market event clears the statistical and the jump level (the move is the market's); the
    other rules keep theirs.

    Args:
        rule: :func:`rule_level`.
        statistical: :func:`statistical_level`.
        market_event: Bars whose move the asset class shares.
        jump: :func:`jump_level` (none when None).

    Returns:
        Levels 0-2.
    """
    movable = np.asarray(statistical)
    if jump is not None:
        movable = np.maximum(movable, np.asarray(jump))
    if market_event is not None:
        movable = np.where(np.asarray(market_event, dtype=bool), 0, movable)
    return np.maximum(np.asarray(rule), movable)


def level_names(levels: np.ndarray) -> np.ndarray:
    """Severity names of numeric levels."""
    return np.array(SEVERITIES, dtype=object)[np.asarray(levels, dtype=np.int64)]


def severity_rank(severity: pd.Series | np.ndarray) -> np.ndarray:
    """Numeric levels of severity names (``info`` 0, ``warning`` 1, ``critical`` 2)."""
    ranks = {name: i for i, name in enumerate(SEVERITIES)}
    return np.array([ranks[s] for s in np.asarray(severity, dtype=object)], dtype=np.int64)
