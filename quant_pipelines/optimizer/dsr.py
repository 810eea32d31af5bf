"""Inputs of the deflated Sharpe ratio of a study: how many configurations, what variance.

* **N, the configurations tried**, counts every distinct parameter set the study evaluated:
  complete, pruned, and failed by evaluation (the backtest raised). A trial whose worker died
  before its parameters were written never evaluated anything, and a re-queued trial repeats
  its predecessor's parameters, so both add nothing. Pruning therefore never changes N: the
  same trials give the same N whether or not a pruner stopped some of them.
* **The Sharpe ratio of a trial** is its in-sample Sharpe ratio over the whole in-sample
  period; a pruned trial contributes the Sharpe ratio of the validation bars it was scored on
  before it was stopped, with its own (smaller) number of observations.
* **The variance** is the sample variance of the per-period Sharpe ratios of every trial that
  has one (complete and pruned). TPE concentrates its samples as it converges, which shrinks
  that variance and would raise the DSR; :func:`~quant_pipelines.optimizer.overfitting.
  sharpe_variance` therefore takes the larger of it and the variance across clusters of
  correlated trials (one mean Sharpe ratio per cluster) when the clusters are known.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from quant_pipelines.backtest import deflated_sharpe_ratio
from quant_pipelines.optimizer.overfitting import sharpe_variance

#: Trial states that evaluated a configuration.
TRIED_STATES = frozenset({"COMPLETE", "PRUNED", "FAIL"})


class _Trial(Protocol):
    number: int
    state: str
    params: dict[str, Any]
    is_metrics: dict[str, float]
    partial: dict[str, float]


def params_key(params: Mapping[str, Any]) -> str:
    """A canonical text of a parameter set (equal sets, equal keys)."""
    return json.dumps(dict(params), sort_keys=True, default=str)


def configurations_tried(records: Sequence[_Trial]) -> int:
    """N: distinct parameter sets among complete, pruned and failed trials (module doc)."""
    return len({params_key(r.params) for r in records if r.state in TRIED_STATES and r.params})


def trial_sharpe(record: _Trial) -> dict[str, float] | None:
    """The trial's Sharpe statistics (annualised ``sharpe``, ``n_obs``, ``skew``,
    ``kurtosis``, ``periods_per_year``), or None when it has none."""
    if record.state == "COMPLETE":
        m = record.is_metrics
    elif record.state == "PRUNED":
        m = record.partial
    else:
        return None
    if not m or "sharpe" not in m or not math.isfinite(float(m["sharpe"])):
        return None
    if float(m.get("n_obs", 0)) < 2:
        return None
    return {
        "sharpe": float(m["sharpe"]),
        "n_obs": float(m["n_obs"]),
        "skew": float(m.get("skew", 0.0)),
        "kurtosis": float(m.get("kurtosis", 3.0)),
        "periods_per_year": float(m.get("periods_per_year", 252.0)),
    }


def per_period(stats: Mapping[str, float]) -> float:
    """The per-period (non-annualised) Sharpe ratio of :func:`trial_sharpe` statistics."""
    return float(stats["sharpe"]) / math.sqrt(float(stats["periods_per_year"]))


def sharpe_variance_of(
    records: Sequence[_Trial], *, clusters: Mapping[int, int] | None = None
) -> tuple[float, str]:
    """The variance of per-period Sharpe ratios over every trial that has one.

    Args:
        records: The study's trials.
        clusters: Trial number -> cluster of correlated return series (see module doc).

    Returns:
        (variance, source) with source "trials" or "clusters".
    """
    numbers, sharpes = [], []
    for r in records:
        stats = trial_sharpe(r)
        if stats is not None:
            numbers.append(r.number)
            sharpes.append(per_period(stats))
    labels = None
    if clusters is not None and all(n in clusters for n in numbers):
        labels = [clusters[n] for n in numbers]
    return sharpe_variance(sharpes, cluster_labels=labels)


def dsr_of(stats: Mapping[str, float], n_trials: int, variance: float) -> float | None:
    """The DSR of a trial's Sharpe statistics among ``n_trials`` with Sharpe ``variance``."""
    try:
        return deflated_sharpe_ratio(
            per_period(stats),
            max(int(n_trials), 1),
            int(stats["n_obs"]),
            float(stats["skew"]),
            float(stats["kurtosis"]),
            max(float(variance), 0.0),
        )
    except ValueError:
        return None
