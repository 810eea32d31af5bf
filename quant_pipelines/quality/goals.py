"""The sentinel's quality goals: the recall and false-alert rates it must reach.

:data:`QUALITY_GOALS` are measured on synthetic bars by
:func:`~quant_pipelines.quality.evaluate`; :data:`REAL_DATA_GOALS` on real bars with planted
corruptions by :func:`~quant_pipelines.quality.harness.run_real_evaluation`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

import pandas as pd

IMPOSSIBLE_KINDS: tuple[str, ...] = ("non_positive_price", "ohlc_inconsistency", "duplicate_bar")
"""Injected kinds that are impossible values."""


@dataclass(frozen=True)
class QualityGoal:
    """One goal of the evaluation.

    Attributes:
        name: What is measured.
        metric: ``recall_warning``, ``recall_critical`` (pooled over ``kinds``), or a
            figure of the report: ``fp_rate_critical`` / ``fp_rate_warning`` (share of clean
            bars), and on real data also ``early_closes_flagged`` and
            ``precision_critical`` / ``precision_warning``.
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


class GoalReport:
    """Goal checks shared by the evaluation reports (a mixin of their dataclasses).

    A recall goal is pooled over its kinds from the report's ``per_kind`` table (weighted by
    ``events``); any other goal reads the report's attribute named by ``metric``.
    """

    default_goals: ClassVar[tuple[QualityGoal, ...]] = ()
    per_kind: pd.DataFrame

    def metric(self, goal: QualityGoal) -> float:
        """The measured value of a goal's metric."""
        if not goal.kinds:
            return float(getattr(self, goal.metric))
        rows = self.per_kind.loc[self.per_kind.index.intersection(list(goal.kinds))]
        events = rows["events"].sum()
        if events == 0:
            return float("nan")
        return float((rows[goal.metric] * rows["events"]).sum() / events)

    def goal_results(self, goals: Iterable[QualityGoal] | None = None) -> pd.DataFrame:
        """Each goal (the report's default goals when None) with its value and whether met."""
        rows = []
        for goal in self.default_goals if goals is None else goals:
            value = self.metric(goal)
            rows.append(
                {
                    "goal": goal.name,
                    "measured": value,
                    "target": f"{'>=' if goal.at_least else '<='} {goal.target:g}",
                    "met": goal.met(value),
                }
            )
        return pd.DataFrame(rows, columns=["goal", "measured", "target", "met"])

    def meets_goals(self, goals: Iterable[QualityGoal] | None = None) -> bool:
        """Whether every goal is met."""
        return bool(self.goal_results(goals)["met"].all())


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
"""The goals on synthetic bars: every injected spike is 8-12 trailing sigmas and every
stale run 5-10 bars, so the recalls are over all injected events of those kinds."""


REAL_DATA_GOALS: tuple[QualityGoal, ...] = (
    QualityGoal("clean bars at warning or above", "fp_rate_warning", 0.02, at_least=False),
    QualityGoal("clean bars at critical", "fp_rate_critical", 0.0005, at_least=False),
    QualityGoal("early closes flagged (clean bars)", "early_closes_flagged", 0, at_least=False),
    QualityGoal("x10 price detected at critical", "recall_critical", 0.95, ("price_x10",)),
    QualityGoal("/100 price detected at critical", "recall_critical", 0.95, ("price_div100",)),
    QualityGoal("high < low detected at critical", "recall_critical", 0.95, ("high_below_low",)),
    QualityGoal(
        "negative price detected at critical", "recall_critical", 0.95, ("negative_price",)
    ),
    QualityGoal(
        "stale run flagged from its 5th close at warning+", "recall_warning", 0.95, ("stale_run",)
    ),
    QualityGoal(
        "dropped session detected at warning+", "recall_warning", 0.95, ("dropped_session",)
    ),
    QualityGoal("zero volume detected at warning+", "recall_warning", 0.95, ("zero_volume",)),
    QualityGoal("precision at critical (3% corrupted)", "precision_critical", 0.95),
)
"""The goals on real daily bars (one production replay of the clean bars, one of a copy with
corruptions planted at 3% of the bars by
:func:`~quant_pipelines.quality.corruptions.plant_corruptions`); precision at warning or above
is reported beside them, without a goal."""
