"""Data-quality sentinel: rules, features, Isolation Forest and Prophet scores, severity.

Pure domain code (numpy, pandas, scikit-learn, prophet, and the ``marketdata`` and ``signals``
packages): no Dagster, no database. The contract used by the Dagster assets is
:func:`score_bars`; ``docs/quality.md`` documents the method, the severity mapping, the
calibration and the measured evaluation.
"""

from __future__ import annotations

from quant_pipelines.quality._jumps import JUMP_BOUNDS, SPLIT_RATIOS
from quant_pipelines.quality._prophet_fit import fit_prophet
from quant_pipelines.quality._schedule import ModelSchedule, fit_schedule, period_starts
from quant_pipelines.quality.batch import SymbolBatch, score_symbols
from quant_pipelines.quality.calibration import (
    CalibrationTargets,
    calibrate,
    calibrate_thresholds,
    walk_forward_scores,
)
from quant_pipelines.quality.evaluation import EvaluationReport, evaluate
from quant_pipelines.quality.features import FEATURE_COLUMNS, IFOREST_FEATURES, build_features
from quant_pipelines.quality.goals import QUALITY_GOALS, QualityGoal
from quant_pipelines.quality.harness import EvaluationRun, run_evaluation
from quant_pipelines.quality.iforest import IForestModel, fit_iforest
from quant_pipelines.quality.market_events import mark_market_events
from quant_pipelines.quality.prophet_models import ProphetModels
from quant_pipelines.quality.rules import (
    IMPOSSIBLE_RULES,
    JUMP_RULES,
    RULES,
    SUSPICIOUS_RULES,
    check_rules,
    missing_bar_times,
)
from quant_pipelines.quality.scoring import SCORE_COLUMNS, SymbolModels, fit_models, score_bars
from quant_pipelines.quality.severity import DEFAULT_THRESHOLDS, SEVERITIES, Thresholds

__all__ = [
    "DEFAULT_THRESHOLDS",
    "FEATURE_COLUMNS",
    "IFOREST_FEATURES",
    "IMPOSSIBLE_RULES",
    "JUMP_BOUNDS",
    "JUMP_RULES",
    "QUALITY_GOALS",
    "RULES",
    "SCORE_COLUMNS",
    "SEVERITIES",
    "SPLIT_RATIOS",
    "SUSPICIOUS_RULES",
    "CalibrationTargets",
    "EvaluationReport",
    "EvaluationRun",
    "IForestModel",
    "ModelSchedule",
    "ProphetModels",
    "QualityGoal",
    "SymbolBatch",
    "SymbolModels",
    "Thresholds",
    "build_features",
    "calibrate",
    "calibrate_thresholds",
    "check_rules",
    "evaluate",
    "fit_iforest",
    "fit_models",
    "fit_prophet",
    "fit_schedule",
    "mark_market_events",
    "missing_bar_times",
    "period_starts",
    "run_evaluation",
    "score_bars",
    "score_symbols",
    "walk_forward_scores",
]
