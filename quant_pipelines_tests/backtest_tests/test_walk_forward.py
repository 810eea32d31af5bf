"""Walk-forward folds and their in-sample / out-of-sample metrics."""

from __future__ import annotations

import pytest

from quant_pipelines.backtest import get_strategy, make_folds, run_backtest, walk_forward
from quant_pipelines_tests._bars import make_bars


def test_anchored_and_rolling_folds() -> None:
    anchored = make_folds(1000, n_folds=4, scheme="anchored", train_frac=0.6, purge=5)
    assert [f.train_start for f in anchored] == [0] * 4
    assert [f.test_start for f in anchored] == [600, 700, 800, 900]
    assert all(f.test_start - f.train_end == 5 for f in anchored)
    assert anchored[-1].test_end == 1000
    rolling = make_folds(1000, n_folds=4, scheme="rolling", train_frac=0.6, purge=5)
    assert {f.train_end - f.train_start for f in rolling} == {595}
    with pytest.raises(ValueError, match="scheme"):
        make_folds(100, n_folds=2, scheme="expanding", train_frac=0.5, purge=0)
    with pytest.raises(ValueError, match="too short"):
        make_folds(20, n_folds=10, scheme="anchored", train_frac=0.5, purge=0)


def test_walk_forward_fixed_params_match_sliced_backtests() -> None:
    bars = make_bars(800, 4)
    strat = get_strategy("sma_crossover")
    params = {"fast": 5, "slow": 30}
    wf = walk_forward(bars, strat, params, n_folds=3, scheme="rolling", purge=10)
    assert len(wf.folds) == 3
    pos = strat.positions(bars, **params)
    for fold, f in zip(
        wf.folds.itertuples(),
        make_folds(800, n_folds=3, scheme="rolling", train_frac=0.5, purge=10),
        strict=True,
    ):
        oos = run_backtest(
            bars.iloc[f.test_start : f.test_end], pos.iloc[f.test_start : f.test_end]
        )
        ins = run_backtest(
            bars.iloc[f.train_start : f.train_end], pos.iloc[f.train_start : f.train_end]
        )
        assert fold.oos_sharpe == pytest.approx(oos.metrics["sharpe"], rel=1e-9, abs=1e-12)
        assert fold.is_total_return == pytest.approx(ins.metrics["total_return"], rel=1e-9)
    assert set(wf.summary) >= {
        "is_sharpe_mean",
        "oos_sharpe_mean",
        "efficiency",
        "oos_total_return",
    }


def test_walk_forward_selects_best_in_sample() -> None:
    bars = make_bars(600, 6)
    strat = get_strategy("ema_crossover")
    candidates = strat.search_space().sample(25, seed=3)
    wf = walk_forward(bars, "ema_crossover", candidates, n_folds=2, objective="total_return")
    from quant_pipelines.backtest import sweep

    f0 = make_folds(600, n_folds=2, scheme="anchored", train_frac=0.5, purge=0)[0]
    table = sweep(bars, strat, candidates, eval_range=(f0.train_start, f0.train_end))
    assert wf.folds["is_total_return"].iloc[0] == pytest.approx(table["total_return"].max())
    assert wf.params[0] == strat.resolve_params(candidates[int(table["total_return"].argmax())])
    with pytest.raises(ValueError, match="objective"):
        walk_forward(bars, strat, candidates, objective="nope")
