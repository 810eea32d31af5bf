"""Backtest optimizer: Optuna (or Hyperopt) studies over a strategy's parameters.

``run_study`` creates or resumes a study by name, scores parameters on validation paths inside
the in-sample period (walk-forward folds or CPCV; they feed the pruner), records in-sample and
holdout scores, computes the study's overfitting statistics (deflated Sharpe ratio over every
configuration tried, PBO, SPA p-value), and mirrors studies and trials through a recorder.
``rank_leaderboard`` ranks trials within one objective and gates each study's pick. Domain code
only: the MongoDB storage is passed in (``storage.optuna_storage(db)`` and
``storage.StudiesRepository(db)``).

Names are imported on first use (like ``services``): importing one submodule, as
``storage`` does for the progress vocabulary, does not load Optuna, arch and the backtester.
"""

from __future__ import annotations

from quant_pipelines._utils.lazy import lazy_exports

# ``gate`` is both a submodule and a function: importing the submodule (as any lazy name of
# it would) sets the package attribute ``gate`` to the module, so the function is bound here,
# eagerly (the module is light), as the package always did.
from quant_pipelines.optimizer.gate import GateThresholds as GateThresholds
from quant_pipelines.optimizer.gate import gate as gate

_WHERE = {
    "deflated_sharpe_ratio": "quant_pipelines.backtest.deflated",
    "configurations_tried": "quant_pipelines.optimizer.dsr",
    "RANK_KEYS": "quant_pipelines.optimizer.leaderboard",
    "format_params": "quant_pipelines.optimizer.leaderboard",
    "rank_leaderboard": "quant_pipelines.optimizer.leaderboard",
    "select_trials": "quant_pipelines.optimizer.leaderboard",
    "Evaluation": "quant_pipelines.optimizer.objectives",
    "Evaluator": "quant_pipelines.optimizer.objectives",
    "OBJECTIVES": "quant_pipelines.optimizer.objectives",
    "prepare": "quant_pipelines.optimizer.objectives",
    "PBOResult": "quant_pipelines.optimizer.overfitting",
    "SPAResult": "quant_pipelines.optimizer.overfitting",
    "effective_number_of_trials": "quant_pipelines.optimizer.overfitting",
    "probability_of_backtest_overfitting": "quant_pipelines.optimizer.overfitting",
    "spa_test": "quant_pipelines.optimizer.overfitting",
    "PortfolioEvaluator": "quant_pipelines.optimizer.portfolio",
    "prepare_portfolio": "quant_pipelines.optimizer.portfolio",
    "StudyRecorder": "quant_pipelines.optimizer.progress",
    "StudySummary": "quant_pipelines.optimizer.progress",
    "TrialRecord": "quant_pipelines.optimizer.progress",
    "deflated_sharpe": "quant_pipelines.optimizer.progress",
    "ENGINES": "quant_pipelines.optimizer.runner",
    "constraint_values": "quant_pipelines.optimizer.runner",
    "run_study": "quant_pipelines.optimizer.runner",
    "HYPEROPT_ALGOS": "quant_pipelines.optimizer.samplers",
    "PRUNERS": "quant_pipelines.optimizer.samplers",
    "SAMPLERS": "quant_pipelines.optimizer.samplers",
    "distributions": "quant_pipelines.optimizer.samplers",
    "make_pruner": "quant_pipelines.optimizer.samplers",
    "make_sampler": "quant_pipelines.optimizer.samplers",
    "StudyStatistics": "quant_pipelines.optimizer.statistics",
    "study_statistics": "quant_pipelines.optimizer.statistics",
    "VALIDATIONS": "quant_pipelines.optimizer.validation",
    "Validation": "quant_pipelines.optimizer.validation",
    "validation_paths": "quant_pipelines.optimizer.validation",
}

__all__ = sorted([*_WHERE, "GateThresholds", "gate"])


__getattr__, __dir__ = lazy_exports(__name__, globals(), _WHERE)
