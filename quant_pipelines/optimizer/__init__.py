"""Backtest optimizer: Optuna (or Hyperopt) studies over a strategy's parameters.

``run_study`` creates or resumes a study by name, scores parameters in sample with the
backtester (walk-forward steps feed the pruner), records out-of-sample metrics, and mirrors
studies and trials through a recorder. Domain code only: the MongoDB storage is passed in
(``storage.optuna_storage(db)`` and ``storage.StudiesRepository(db)``).
"""

from __future__ import annotations

from quant_pipelines.optimizer.objectives import OBJECTIVES, Evaluation, Evaluator, prepare
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

__all__ = [
    "ENGINES",
    "HYPEROPT_ALGOS",
    "OBJECTIVES",
    "PRUNERS",
    "SAMPLERS",
    "Evaluation",
    "Evaluator",
    "StudyRecorder",
    "StudySummary",
    "TrialRecord",
    "constraint_values",
    "deflated_sharpe",
    "distributions",
    "make_pruner",
    "make_sampler",
    "prepare",
    "run_study",
]
