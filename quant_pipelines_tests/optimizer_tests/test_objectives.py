"""Objectives: walk-forward steps, in/out-of-sample split, aggregation over symbols."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quant_pipelines.backtest import get_strategy, run_backtest
from quant_pipelines.optimizer import OBJECTIVES, Evaluator, prepare
from quant_pipelines.optimizer.objectives import Pruned, finite

PARAMS = {"fast": 5, "slow": 30}


def test_last_step_is_the_whole_in_sample_period_and_oos_follows(bars) -> None:
    data = prepare(bars, oos_fraction=0.3, n_folds=3, asset_class="equity")
    (d,) = data
    assert d.split == len(bars) - round(len(bars) * 0.3)
    assert d.step_ends[-1] == d.split and list(d.step_ends) == sorted(d.step_ends)
    ev = Evaluator(get_strategy("sma_crossover"), data).evaluate(PARAMS)
    strat = get_strategy("sma_crossover")
    pos = strat.positions(bars, **PARAMS)
    is_ = run_backtest(bars.iloc[: d.split], pos.iloc[: d.split], periods_per_year=252)
    oos = run_backtest(bars.iloc[d.split :], pos.iloc[d.split :], periods_per_year=252)
    assert ev.values == (pytest.approx(is_.metrics["sharpe"]),)
    assert ev.is_metrics["n_trades"] == is_.metrics["n_trades"]
    assert ev.oos_metrics["sharpe"] == pytest.approx(oos.metrics["sharpe"])
    assert ev.params == {**PARAMS, "allow_short": False}
    assert {"skew", "kurtosis", "n_obs", "periods_per_year"} <= set(ev.is_metrics)


def test_steps_are_reported_and_can_stop_the_evaluation(bars) -> None:
    ev = Evaluator(get_strategy("sma_crossover"), prepare(bars, n_folds=4))
    seen = []
    ev.evaluate(PARAMS, report=lambda v, k: seen.append(k))
    assert seen == [0, 1, 2]  # the last step is the objective itself

    def stop(value: float, step: int) -> None:
        raise Pruned

    with pytest.raises(Pruned):
        ev.evaluate(PARAMS, report=stop)


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_every_objective_gives_finite_values(bars, objective: str) -> None:
    data = prepare(bars, with_regimes=objective == "regime_robust")
    ev = Evaluator(get_strategy("sma_crossover"), data, objective=objective).evaluate(PARAMS)
    assert len(ev.values) == len(OBJECTIVES[objective])
    assert all(math.isfinite(v) for v in ev.values)


def test_several_symbols_average_metrics_and_sum_trades(crypto_bars) -> None:
    strat = get_strategy("sma_crossover")
    both = Evaluator(strat, prepare(crypto_bars, asset_class="crypto")).evaluate(PARAMS)
    single = [
        Evaluator(strat, prepare(b, asset_class="crypto")).evaluate(PARAMS)
        for b in crypto_bars.values()
    ]
    assert both.values[0] == pytest.approx(np.mean([s.values[0] for s in single]))
    assert both.is_metrics["n_trades"] == sum(s.is_metrics["n_trades"] for s in single)


def test_bad_inputs_are_refused(bars) -> None:
    with pytest.raises(ValueError, match="oos_fraction"):
        prepare(bars, oos_fraction=1.0)
    with pytest.raises(ValueError, match="no bars"):
        prepare({})
    with pytest.raises(ValueError, match="too few"):
        prepare(bars.iloc[:12], n_folds=1, oos_fraction=0.5)
    with pytest.raises(ValueError, match="unknown objective"):
        Evaluator(get_strategy("sma_crossover"), prepare(bars), objective="alpha")
    assert finite(float("inf")) == 1e6
    with pytest.raises(ValueError, match="NaN"):
        finite(float("nan"))
