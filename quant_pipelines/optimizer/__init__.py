"""Backtest optimizer: Optuna (or Hyperopt) studies over a strategy's parameters.

``run_study`` creates or resumes a study by name, scores parameters on validation paths inside
the in-sample period (walk-forward folds or CPCV; they feed the pruner), records in-sample and
holdout scores, computes the study's overfitting statistics (deflated Sharpe ratio over every
configuration tried, PBO, SPA p-value), and mirrors studies and trials through a recorder.
``rank_leaderboard`` ranks trials within one objective and gates each study's pick. Domain code
only: the MongoDB storage is passed in (``storage.optuna_storage(db)`` and
``storage.StudiesRepository(db)``).
"""

from __future__ import annotations

from quant_pipelines.backtest.deflated import deflated_sharpe_ratio
from quant_pipelines.optimizer.dsr import configurations_tried
from quant_pipelines.optimizer.gate import GateThresholds, gate
from quant_pipelines.optimizer.leaderboard import (
    RANK_KEYS,
    format_params,
    rank_leaderboard,
    select_trials,
)
from quant_pipelines.optimizer.objectives import OBJECTIVES, Evaluation, Evaluator, prepare
from quant_pipelines.optimizer.overfitting import (
    PBOResult,
    SPAResult,
    effective_number_of_trials,
    probability_of_backtest_overfitting,
    spa_test,
)
from quant_pipelines.optimizer.portfolio import PortfolioEvaluator, prepare_portfolio
from quant_pipelines.optimizer.progress import (
    StudyRecorder,
    StudySummary,
    TrialRecord,
    deflated_sharpe,
)
from quant_pipelines.optimizer.runner import ENGINES, constraint_values, run_study
from quant_pipelines.optimizer.samplers import (
    HYPEROPT_ALGOS,
    PRUNERS,
    SAMPLERS,
    distributions,
    make_pruner,
    make_sampler,
)
from quant_pipelines.optimizer.statistics import StudyStatistics, study_statistics
from quant_pipelines.optimizer.validation import VALIDATIONS, Validation, validation_paths

__all__ = [
    "ENGINES",
    "HYPEROPT_ALGOS",
    "OBJECTIVES",
    "PRUNERS",
    "RANK_KEYS",
    "SAMPLERS",
    "VALIDATIONS",
    "Evaluation",
    "Evaluator",
    "GateThresholds",
    "PBOResult",
    "PortfolioEvaluator",
    "SPAResult",
    "StudyRecorder",
    "StudyStatistics",
    "StudySummary",
    "TrialRecord",
    "Validation",
    "configurations_tried",
    "constraint_values",
    "deflated_sharpe",
    "deflated_sharpe_ratio",
    "distributions",
    "effective_number_of_trials",
    "format_params",
    "gate",
    "make_pruner",
    "make_sampler",
    "prepare",
    "prepare_portfolio",
    "probability_of_backtest_overfitting",
    "rank_leaderboard",
    "run_study",
    "select_trials",
    "spa_test",
    "study_statistics",
    "validation_paths",
]
