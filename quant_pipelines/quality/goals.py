"""The sentinel's quality goals (issue 5), measured by :func:`~quant_pipelines.quality.evaluate`."""

from __future__ import annotations

from dataclasses import dataclass

IMPOSSIBLE_KINDS: tuple[str, ...] = ("non_positive_price", "ohlc_inconsistency", "duplicate_bar")
"""Injected kinds that are impossible values."""


@dataclass(frozen=True)
class QualityGoal:
    """One goal of the evaluation.

    Attributes:
        name: What is measured.
        metric: ``recall_warning``, ``recall_critical`` (pooled over ``kinds``) or
            ``fp_rate_critical`` / ``fp_rate_warning`` (share of clean bars).
        target: The bound to meet.
        kinds: Injected kinds the recall is pooled over (empty for a rate).
        at_least: True when the measured value must be >= target, False for <=.
    """

    name: str
    metric: str
    target: float
    kinds: tuple[str, ...] = ()
    at_least: bool = True

    def met(self, value: float) -> bool:
        """Whether a measured value meets the goal (NaN never does)."""
        if value != value:  # NaN
            return False
        return value >= self.target if self.at_least else value <= self.target


QUALITY_GOALS: tuple[QualityGoal, ...] = (
    QualityGoal(
        "impossible values detected at critical", "recall_critical", 0.95, IMPOSSIBLE_KINDS
    ),
    QualityGoal(
        "price spikes >= 8 sigma detected at warning+", "recall_warning", 0.8, ("price_spike",)
    ),
    QualityGoal(
        "stale runs >= 5 bars detected at warning+", "recall_warning", 0.8, ("stale_price",)
    ),
    QualityGoal("critical rate on clean bars", "fp_rate_critical", 0.005, at_least=False),
)
"""The goals of issue 5 ("Quality goals"): every injected spike is 8-12 trailing sigmas and every
stale run 5-10 bars, so the recalls are over all injected events of those kinds."""
