"""The deflated Sharpe ratio of a study: N counts every configuration tried, pruned or not."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant_pipelines.backtest import deflated_sharpe_ratio
from quant_pipelines.optimizer import TrialRecord, configurations_tried
from quant_pipelines.optimizer.dsr import sharpe_variance_of, trial_sharpe
from quant_pipelines.optimizer.progress import deflated_sharpe


def _complete(number: int, sharpe: float, params: dict | None = None) -> TrialRecord:
    return TrialRecord(
        number,
        "COMPLETE",
        params if params is not None else {"fast": number, "slow": 100 + number},
        values=[sharpe],
        is_metrics={
            "sharpe": sharpe,
            "n_obs": 1000.0,
            "skew": 0.0,
            "kurtosis": 3.0,
            "periods_per_year": 252.0,
        },
    )


def _pruned(record: TrialRecord, n_obs: float = 300.0) -> TrialRecord:
    return TrialRecord(
        record.number,
        "PRUNED",
        record.params,
        partial={**record.is_metrics, "n_obs": n_obs, "step": 0.0},
    )


@settings(max_examples=60, deadline=None)
@given(
    sharpes=st.lists(st.floats(-2.0, 3.0), min_size=2, max_size=40),
    pruned=st.lists(st.booleans(), min_size=40, max_size=40),
    failed=st.integers(0, 5),
)
def test_n_is_every_configuration_tried_whatever_the_pruner(sharpes, pruned, failed) -> None:
    complete = [_complete(i, s) for i, s in enumerate(sharpes)]
    with_pruning = [_pruned(r) if p else r for r, p in zip(complete, pruned, strict=False)]
    errors = [
        TrialRecord(len(sharpes) + i, "FAIL", {"fast": 1000 + i, "slow": 9}) for i in range(failed)
    ]
    expected = len(sharpes) + failed
    assert configurations_tried(complete + errors) == expected
    assert configurations_tried(with_pruning + errors) == expected


def test_dead_workers_and_repeated_parameters_add_no_configuration() -> None:
    a = _complete(0, 1.0, {"fast": 5, "slow": 50})
    again = _complete(1, 1.0, {"fast": 5, "slow": 50})  # TPE sampled the same point twice
    reaped = TrialRecord(2, "FAIL", {"fast": 7, "slow": 70})  # its worker died ...
    retry = _complete(3, 0.5, {"fast": 7, "slow": 70})  # ... and it was re-queued
    never = TrialRecord(4, "FAIL", {})  # died before its parameters were written
    running = TrialRecord(5, "RUNNING", {"fast": 9, "slow": 90})
    assert configurations_tried([a, again, reaped, retry, never, running]) == 2


def test_a_pruned_trial_counts_with_its_own_observations() -> None:
    r = _pruned(_complete(0, 1.2), n_obs=250)
    stats = trial_sharpe(r)
    assert stats is not None and stats["n_obs"] == 250 and stats["sharpe"] == 1.2
    assert trial_sharpe(TrialRecord(1, "FAIL", {"fast": 1})) is None
    # Its Sharpe ratio widens the variance the DSR deflates with.
    others = [_complete(i, 0.5 + 0.01 * i) for i in range(1, 10)]
    narrow, _ = sharpe_variance_of(others)
    wide, _ = sharpe_variance_of([*others, _pruned(_complete(10, 3.0))])
    assert wide > narrow


@pytest.mark.parametrize("variance", [1e-4, 1e-3])
def test_dsr_falls_as_n_grows_with_best_and_variance_fixed(variance: float) -> None:
    best = _complete(0, 1.5)
    values = [deflated_sharpe(best, [best], n_trials=n, sharpe_variance=variance) for n in
              (1, 2, 5, 20, 100, 1000, 10000)]  # fmt: skip
    assert all(v is not None for v in values)
    assert all(a > b for a, b in itertools.pairwise(values)), values


def test_more_configurations_tried_deflate_the_same_best_trial_more() -> None:
    rng = np.random.default_rng(0)
    best = _complete(0, 1.8)
    small = [best] + [_complete(i, float(rng.normal(0.4, 0.4))) for i in range(1, 20)]
    # The same population, plus 180 pruned configurations of the same spread.
    large = small + [_pruned(_complete(i, float(rng.normal(0.4, 0.4)))) for i in range(20, 200)]
    d_small = deflated_sharpe(best, small)
    d_large = deflated_sharpe(best, large)
    assert d_small is not None and d_large is not None
    assert d_large < d_small


def test_dsr_reproduces_the_paper_example() -> None:
    # Bailey & Lopez de Prado (2014): SR 2.5 annual on 1250 daily obs, skew -3, kurt 10,
    # 100 trials, variance of annual SR 0.5 -> DSR ~ 0.9004.
    sr = 2.5 / math.sqrt(250)
    value = deflated_sharpe_ratio(sr, 100, 1250, -3.0, 10.0, 0.5 / 250)
    assert value == pytest.approx(0.9004, abs=1e-3)
