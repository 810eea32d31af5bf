"""Use cases as plain functions: each takes the database (through storage) and domain inputs
and returns a report dataclass. Dagster assets and the CLI call these; they never import
Dagster or the HTTP API."""

from __future__ import annotations

from quant_pipelines.services.calibration import CalibrationReport, recalibrate
from quant_pipelines.services.leaderboard import (
    LeaderboardReport,
    PromotionCheck,
    build_leaderboard,
    check_promotions,
    promoted_strategies,
)

__all__ = [
    "CalibrationReport",
    "LeaderboardReport",
    "PromotionCheck",
    "build_leaderboard",
    "check_promotions",
    "promoted_strategies",
    "recalibrate",
]
