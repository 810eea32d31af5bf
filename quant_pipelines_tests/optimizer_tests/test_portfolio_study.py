"""Portfolio studies: the objective is the portfolio's metric, on the union calendar."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.backtest.portfolio import run_portfolio_backtest
from quant_pipelines.backtest.portfolio.strategies import portfolio_weights
from quant_pipelines.backtest.strategies import UnknownStrategyError
from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.optimizer import rank_leaderboard, run_study, select_trials
from quant_pipelines.optimizer._paths import path_metrics
from quant_pipelines.optimizer.objectives import Evaluator, prepare
from quant_pipelines.optimizer.portfolio import (
    PortfolioEvaluator,
    prepare_portfolio,
    resolve_strategy,
)
from quant_pipelines.optimizer.portfolio_report import portfolio_backtest
from quant_pipelines.optimizer.validation import Validation
from quant_pipelines_tests._bars import goog_bars

FAST = {"n_blocks": 4, "spa_reps": 50}


@pytest.fixture(scope="module")
def universe() -> dict[str, pd.DataFrame]:
    """Real GOOG bars and seeded synthetic equities (one on a thinner calendar)."""
    src = SyntheticSource(3)
    out = {"GOOG": goog_bars().loc["2011-01-01":]}
    for s in ("AAPL", "MSFT", "SPY"):
        b = src.bars(s, "2011-01-01", "2013-03-01")
        b.index = b.index.normalize()
        out[s] = b
    out["SPY"] = out["SPY"].iloc[::2]  # every other session: the union calendar matters
    return out


def test_objective_is_the_portfolio_metric_of_the_best_params(universe, recorder) -> None:
    summary = run_study(
        universe,
        strategy="xs_momentum",
        study_name="pf",
        n_trials=8,
        seed=3,
        recorder=recorder,
        oos_fraction=0.25,
        **FAST,
    )
    assert summary.status == "completed"
    best = summary.best_params
    # Independently: the union calendar, its split, the IS book and the walk-forward folds.
    index = universe["GOOG"].index
    for b in universe.values():
        index = index.union(b.index)
    split = len(index) - round(len(index) * 0.25)
    cut = index[split]
    is_bars = {s: b.loc[b.index < cut] for s, b in universe.items()}
    weights = portfolio_weights("xs_momentum", universe, best).iloc[:split]
    book = run_portfolio_backtest(is_bars, weights, periods_per_year=252)
    folds = Validation().n_folds
    data = prepare_portfolio(universe, oos_fraction=0.25)
    assert len(data.paths) == folds and data.split == split
    per_path = [path_metrics(book.returns.to_numpy(), p, 252)["sharpe"] for p in data.paths]
    assert summary.best_value == pytest.approx(float(np.mean(per_path)), rel=1e-12, abs=1e-12)
    doc = recorder.trials[("pf", summary.best_number)]
    assert doc["in_sample"] == pytest.approx(book.metrics["sharpe"], rel=1e-12)
    # Not an average of per-symbol Sharpe ratios.
    single = Evaluator(resolve_strategy("momentum"), prepare(universe, oos_fraction=0.25))
    assert single.evaluate({}).values[0] != pytest.approx(summary.best_value)
    study = recorder.studies["pf"]
    assert study["portfolio"] is True and study["symbols"] == list(universe)
    assert all(t["portfolio"] is True for t in recorder.trials.values())
    assert study["in_sample"][0]["end"] < cut.to_pydatetime() <= study["out_of_sample"][0]["start"]


def test_leaderboard_and_statistics_apply_unchanged(universe, recorder) -> None:
    summary = run_study(
        universe, strategy="xs_momentum", study_name="pf2", n_trials=6, seed=1, recorder=recorder
    )
    stats = summary.statistics
    assert stats["pbo"] is not None and 0.0 <= stats["pbo"]["pbo"] <= 1.0
    assert stats["spa"] is not None and 0.0 <= stats["spa"]["pvalue"] <= 1.0
    assert stats["deflated_sharpe"]
    study = {**recorder.studies["pf2"], "study_name": "pf2"}
    trials = [{**d, "study_name": "pf2"} for d in recorder.trials.values()]
    rows = rank_leaderboard([study], trials)
    assert rows and all(r["portfolio"] is True and r["symbols"] == list(universe) for r in rows)
    picks = select_trials([study], trials)
    assert picks[0]["observed"]["pbo"] == stats["pbo"]["pbo"]
    # The benchmark is the equal-weight buy-and-hold of the same universe.
    ev = PortfolioEvaluator(resolve_strategy("xs_momentum"), prepare_portfolio(universe))
    assert stats["buy_hold_holdout_sharpe"] == pytest.approx(ev.buy_and_hold_sharpe(holdout=True))
    assert len(ev.benchmark_returns()) == len(ev.in_sample_returns({}))


def test_single_asset_name_with_portfolio_true_is_signal_x_allocator(universe, recorder) -> None:
    summary = run_study(
        universe,
        strategy="sma_crossover",
        portfolio=True,
        study_name="pf3",
        n_trials=3,
        seed=0,
        recorder=recorder,
        validation="none",
        **FAST,
    )
    assert recorder.studies["pf3"]["strategy"] == "signal_sma_crossover"
    assert summary.n_trials == 3


def test_regime_robust_portfolio_objective(universe, recorder) -> None:
    summary = run_study(
        universe,
        strategy="equal_weight",
        study_name="pf4",
        n_trials=2,
        objective="regime_robust",
        recorder=recorder,
        **FAST,
    )
    assert np.isfinite(summary.best_value)
    assert "worst_regime_sharpe" in recorder.trials[("pf4", 0)]["is_metrics"]


@pytest.mark.parametrize(
    ("case", "kwargs", "match"),
    [
        ("one-symbol", {"bars": "one"}, "at least 2 symbols; got 1"),
        ("frame-not-mapping", {"bars": "frame"}, "mapping symbol -> DataFrame"),
        ("unknown-strategy", {"strategy": "xs_nothing"}, "unknown strategy 'xs_nothing'"),
        ("empty-symbol", {"bars": "empty"}, "symbol 'AAPL' has no bars"),
        ("bad-option", {"portfolio_options": {"leverage": 2}}, "unknown portfolio option"),
    ],
    ids=["one-symbol", "frame-not-mapping", "unknown-strategy", "empty-symbol", "bad-option"],
)
def test_bad_input_is_named(universe, case, kwargs, match) -> None:
    bars = kwargs.pop("bars", None)
    data = {
        None: universe,
        "one": {"GOOG": universe["GOOG"]},
        "frame": universe["GOOG"],
        "empty": {**universe, "AAPL": universe["AAPL"].iloc[:0]},
    }[bars]
    args = {"strategy": "xs_momentum", **kwargs}
    with pytest.raises((ValueError, TypeError, UnknownStrategyError), match=match):
        run_study(data, study_name=case, n_trials=1, **args)


def test_portfolio_backtest_report(universe) -> None:
    report = portfolio_backtest(universe, "xs_momentum", {"lookback": 40, "skip": 5})
    assert report.png.startswith(b"\x89PNG")
    assert {r["symbol"] for r in report.contributions} == set(universe)
    total = sum(r["return_contribution"] for r in report.contributions)
    assert total == pytest.approx(report.metrics["total_return"], abs=1e-9)
    assert "| **portfolio** |" in report.markdown()
    assert report.to_document()["equity"][0]["benchmark"] > 0
