"""All of a study's overfitting statistics: DSR per trial, PBO, SPA p-value, benchmarks.

:func:`study_statistics` recomputes the in-sample return series of the study's configurations
from their parameters (the backtester is deterministic and fast, so nothing large is stored),
then computes:

* the deflated Sharpe ratio of every complete trial, with N = every configuration tried and
  the variance rule of :mod:`quant_pipelines.optimizer.dsr`, the variance taking the clusters
  of correlated return series into account; the effective N (the number of clusters) is
  reported beside N and not used;
* the probability of backtest overfitting by CSCV over ``n_blocks`` blocks of the in-sample
  period, with the performance degradation slope and the probability of loss;
* Hansen's SPA p-value of the configurations against buy-and-hold on the same bars (seeded
  stationary bootstrap);
* buy-and-hold's Sharpe ratio on the in-sample period and on the holdout bars.

A statistic that cannot be computed (fewer than 2 configurations, an in-sample period too
short for the blocks) is None, with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from quant_pipelines.optimizer.dsr import (
    configurations_tried,
    dsr_of,
    params_key,
    sharpe_variance_of,
    trial_sharpe,
)
from quant_pipelines.optimizer.objectives import Evaluator
from quant_pipelines.optimizer.overfitting import (
    cluster_labels,
    probability_of_backtest_overfitting,
    spa_test,
)
from quant_pipelines.optimizer.portfolio import PortfolioEvaluator
from quant_pipelines.optimizer.progress import TrialRecord

#: Defaults of the statistics (as in the papers that define them).
N_BLOCKS = 16
SPA_REPS = 1000
MAX_CORRELATION = 0.9


@dataclass(frozen=True)
class StudyStatistics:
    """A study's overfitting statistics (module doc). JSON-able through :meth:`to_dict`.

    Attributes:
        n_trials_tried: N, the configurations tried.
        n_with_sharpe: Trials with a Sharpe ratio (complete and pruned).
        effective_n: Clusters of correlated configurations (information only).
        sharpe_variance: Variance of the per-period Sharpe ratios used by the DSR.
        variance_source: "trials" or "clusters".
        deflated_sharpe: Trial number -> DSR, for every complete trial.
        pbo: PBO result (``pbo``, ``degradation_slope``, ``probability_of_loss`` ...) or None.
        pbo_reason: Why ``pbo`` is None.
        spa: SPA result (``pvalue`` ...) or None.
        spa_reason: Why ``spa`` is None.
        buy_hold_in_sample_sharpe: Buy-and-hold's Sharpe ratio in sample (mean over symbols).
        buy_hold_holdout_sharpe: Buy-and-hold's Sharpe ratio on the holdout bars, or None.
        n_configurations: Distinct configurations in the PBO and SPA matrices.
        n_blocks: CSCV blocks asked for.
        spa_reps: Bootstrap draws of the SPA test.
        seed: Seed of the bootstrap.
        elapsed_s: Seconds the statistics took.
    """

    n_trials_tried: int
    n_with_sharpe: int
    effective_n: int | None
    sharpe_variance: float
    variance_source: str
    deflated_sharpe: dict[int, float | None] = field(default_factory=dict)
    pbo: dict[str, Any] | None = None
    pbo_reason: str | None = None
    spa: dict[str, Any] | None = None
    spa_reason: str | None = None
    buy_hold_in_sample_sharpe: float | None = None
    buy_hold_holdout_sharpe: float | None = None
    n_configurations: int = 0
    n_blocks: int = N_BLOCKS
    spa_reps: int = SPA_REPS
    seed: int = 0
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON/BSON-able dict (trial numbers become string keys)."""
        out = asdict(self)
        out["deflated_sharpe"] = {str(k): v for k, v in self.deflated_sharpe.items()}
        return out


def benchmark_returns(evaluator: Evaluator | PortfolioEvaluator) -> np.ndarray:
    """Buy-and-hold's in-sample bar returns (bar 0 left out): averaged over symbols, or the
    equal-weight buy-and-hold of a portfolio study's universe."""
    return evaluator.benchmark_returns()


def buy_and_hold_sharpe(
    evaluator: Evaluator | PortfolioEvaluator, *, holdout: bool
) -> float | None:
    """Buy-and-hold's Sharpe ratio on the in-sample or the holdout bars (averaged over
    symbols, or the equal-weight benchmark of a portfolio study)."""
    return evaluator.buy_and_hold_sharpe(holdout=holdout)


def study_statistics(
    evaluator: Evaluator | PortfolioEvaluator,
    records: Sequence[TrialRecord],
    *,
    n_blocks: int = N_BLOCKS,
    spa_reps: int = SPA_REPS,
    seed: int = 0,
    max_correlation: float = MAX_CORRELATION,
) -> StudyStatistics:
    """Every overfitting statistic of one study (module doc).

    Args:
        evaluator: The study's evaluator (its bars, split, costs and strategy).
        records: The study's trials.
        n_blocks: CSCV blocks of the in-sample period.
        spa_reps: Bootstrap draws of the SPA test.
        seed: Seed of the bootstrap.
        max_correlation: Return series correlated above this are one cluster.

    Returns:
        The :class:`StudyStatistics`.
    """
    t0 = time.perf_counter()
    tried = configurations_tried(records)
    scored = [r for r in records if trial_sharpe(r) is not None and r.params]
    columns: dict[str, int] = {}
    params_by_key: dict[str, dict[str, Any]] = {}
    for r in scored:
        key = params_key(r.params)
        if key not in columns:
            columns[key] = len(columns)
            params_by_key[key] = r.params
    matrix = (
        np.column_stack([evaluator.in_sample_returns(params_by_key[k]) for k in columns])
        if columns
        else np.empty((0, 0))
    )
    clusters = None
    effective_n = None
    if matrix.shape[1] >= 2:
        labels = cluster_labels(matrix, max_correlation=max_correlation)
        effective_n = len(set(labels.tolist()))
        clusters = {r.number: int(labels[columns[params_key(r.params)]]) for r in scored}
    elif matrix.shape[1] == 1:
        effective_n = 1
    variance, source = sharpe_variance_of(records, clusters=clusters)
    dsr = {
        r.number: dsr_of(stats, tried, variance)
        for r in records
        if r.state == "COMPLETE" and (stats := trial_sharpe(r)) is not None
    }
    pbo = pbo_reason = spa = spa_reason = None
    if matrix.shape[1] < 2:
        pbo_reason = spa_reason = (
            f"{matrix.shape[1]} configuration(s) with a Sharpe ratio; at least 2 are needed"
        )
    else:
        try:
            pbo = probability_of_backtest_overfitting(
                matrix,
                n_blocks=n_blocks,
                periods_per_year=evaluator.periods_per_year,
            ).to_dict()
        except ValueError as exc:
            pbo_reason = str(exc)
        try:
            spa = spa_test(benchmark_returns(evaluator), matrix, reps=spa_reps, seed=seed).to_dict()
        except ValueError as exc:
            spa_reason = str(exc)
    return StudyStatistics(
        n_trials_tried=tried,
        n_with_sharpe=len(scored),
        effective_n=effective_n,
        sharpe_variance=float(variance),
        variance_source=source,
        deflated_sharpe=dsr,
        pbo=pbo,
        pbo_reason=pbo_reason,
        spa=spa,
        spa_reason=spa_reason,
        buy_hold_in_sample_sharpe=buy_and_hold_sharpe(evaluator, holdout=False),
        buy_hold_holdout_sharpe=buy_and_hold_sharpe(evaluator, holdout=True),
        n_configurations=int(matrix.shape[1]),
        n_blocks=n_blocks,
        spa_reps=spa_reps,
        seed=seed,
        elapsed_s=time.perf_counter() - t0,
    )
