"""Objectives: in-sample, validation paths and holdout, pruning steps, several symbols."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.backtest import get_strategy, run_backtest
from quant_pipelines.optimizer import OBJECTIVES, Evaluator, Validation, prepare
from quant_pipelines.optimizer.objectives import Pruned, finite

PARAMS = {"fast": 5, "slow": 30}


def test_in_sample_validation_and_holdout_are_scored_on_their_own_bars(bars) -> None:
    data = prepare(bars, oos_fraction=0.3, n_folds=3, asset_class="equity")
    (d,) = data
    assert d.split == len(bars) - round(len(bars) * 0.3)
    # Three walk-forward test windows, inside the in-sample period, in time order.
    assert len(d.paths) == 3
    ranges = [r for path in d.paths for r in path]
    assert all(0 < lo < hi <= d.split for lo, hi in ranges)
    assert ranges == sorted(ranges) and ranges[-1][1] == d.split
    strat = get_strategy("sma_crossover")
    ev = Evaluator(strat, data).evaluate(PARAMS)
    pos = strat.positions(bars, **PARAMS)
    is_ = run_backtest(bars.iloc[: d.split], pos.iloc[: d.split], periods_per_year=252)
    oos = run_backtest(bars.iloc[d.split :], pos.iloc[d.split :], periods_per_year=252)
    assert ev.in_sample == (pytest.approx(is_.metrics["sharpe"]),)
    assert ev.holdout == (pytest.approx(oos.metrics["sharpe"]),)
    assert ev.is_metrics["n_trades"] == is_.metrics["n_trades"]
    assert ev.oos_metrics["sharpe"] == pytest.approx(oos.metrics["sharpe"])
    # Each fold's value is the Sharpe ratio of the in-sample returns of its window alone.
    returns = is_.returns.to_numpy()
    for (lo, hi), value in zip(ranges, ev.path_values, strict=True):
        r = returns[lo:hi]
        assert value == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252))
    assert ev.validation == (pytest.approx(np.mean(ev.path_values)),)
    assert ev.values == ev.validation  # what the sampler maximises: never the holdout
    assert ev.params == {**PARAMS, "allow_short": False}
    assert {"skew", "kurtosis", "n_obs", "periods_per_year"} <= set(ev.is_metrics)


def test_the_holdout_never_changes_the_optimised_value(bars) -> None:
    strat = get_strategy("sma_crossover")
    data = prepare(bars, oos_fraction=0.3)
    split = data[0].split
    scrambled = bars.copy()
    tail = scrambled.iloc[split:].copy()
    tail[["open", "high", "low", "close"]] = tail[["open", "high", "low", "close"]].to_numpy()[::-1]
    scrambled.iloc[split:] = tail
    a = Evaluator(strat, data).evaluate(PARAMS)
    b = Evaluator(strat, prepare(scrambled, oos_fraction=0.3)).evaluate(PARAMS)
    assert a.values == b.values and a.in_sample == b.in_sample
    assert a.holdout != b.holdout


def test_no_validation_means_the_in_sample_value(bars) -> None:
    strat = get_strategy("sma_crossover")
    ev = Evaluator(strat, prepare(bars, validation=Validation("none"))).evaluate(PARAMS)
    assert ev.validation is None and ev.path_values == ()
    assert ev.values == ev.in_sample


def test_cpcv_paths_cover_the_in_sample_period(bars) -> None:
    v = Validation("cpcv", n_groups=6, n_test_groups=2, purge=3, embargo=2)
    (d,) = prepare(bars, validation=v)
    assert len(d.paths) == 5  # k * C(N, k) / N
    for path in d.paths:
        covered = sorted(b for lo, hi in path for b in range(lo, hi))
        assert covered == list(range(d.split))
    ev = Evaluator(get_strategy("sma_crossover"), [d]).evaluate(PARAMS)
    assert len(ev.path_values) == 5
    assert ev.values == (pytest.approx(np.mean(ev.path_values)),)


def test_unknown_validation_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="walk_forward, cpcv, none"):
        Validation("kfold")


def test_steps_are_reported_and_can_stop_the_evaluation(bars) -> None:
    ev = Evaluator(get_strategy("sma_crossover"), prepare(bars, n_folds=4))
    seen, partial = [], []
    ev.evaluate(PARAMS, report=lambda v, k: seen.append((k, v)), partial=partial.append)
    assert [k for k, _ in seen] == [0, 1, 2]  # the last step is the objective itself
    full = ev.evaluate(PARAMS)
    for k, value in seen:  # the running mean of the fold values so far
        assert value == pytest.approx(np.mean(full.path_values[: k + 1]))
    # A pruned trial keeps the Sharpe statistics of the bars it was scored on.
    assert [p["step"] for p in partial] == [0, 1, 2]
    n_obs = [p["n_obs"] for p in partial]
    assert n_obs == sorted(n_obs) and n_obs[0] > 10

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
    assert both.in_sample[0] == pytest.approx(np.mean([s.in_sample[0] for s in single]))
    assert both.is_metrics["n_trades"] == sum(s.is_metrics["n_trades"] for s in single)


def test_in_sample_returns_average_symbols_on_the_union_of_their_sessions(crypto_bars) -> None:
    # Each misses bars the other has: on those days the other's return is averaged with a 0.
    btc, eth = crypto_bars["BTCUSD"], crypto_bars["ETHUSD"]
    bars = {"BTCUSD": btc.drop(btc.index[5::11]), "ETHUSD": eth.drop(eth.index[3::7])}
    data = prepare(bars, asset_class="crypto")
    ev = Evaluator(get_strategy("sma_crossover"), data)

    def by_pandas(targets: dict[str, np.ndarray]) -> np.ndarray:
        series = [
            run_backtest(
                d.bars.iloc[: d.split],
                targets[d.symbol][: d.split],
                periods_per_year=d.periods_per_year,
            ).returns.iloc[1:]
            for d in data
        ]
        return pd.concat(series, axis=1, sort=True).fillna(0.0).mean(axis=1).to_numpy()

    sessions = [d.bars.index[1 : d.split] for d in data]
    n_union = len(sessions[0].union(sessions[1]))
    assert n_union > max(len(s) for s in sessions)
    # Later calls reuse the first call's alignment: still the same figures, bit for bit.
    for params in (PARAMS, {"fast": 3, "slow": 12}, PARAMS):
        got = ev.in_sample_returns(params)
        assert len(got) == n_union
        np.testing.assert_array_equal(got, by_pandas(ev.targets(params)))
    hold = {d.symbol: np.ones(len(d.bars)) for d in data}
    np.testing.assert_array_equal(ev.benchmark_returns(), by_pandas(hold))


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
