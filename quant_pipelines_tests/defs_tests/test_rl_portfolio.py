"""Portfolio RL assets on the embedded MongoDB: train, replay against a promoted strategy."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pandas as pd
import pytest
from pymongo.database import Database

from quant_pipelines.backtest.costs import FlatCosts
from quant_pipelines.defs.resources import MongoResource, UniverseResource
from quant_pipelines.defs.rl.portfolio import rl_portfolio_policy, rl_portfolio_policy_replay
from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.rl._portfolio_report import strategy_replay
from quant_pipelines.storage import BarsRepository

pytestmark = pytest.mark.slow

CONFIG = {
    "asset_class": "equity",
    "total_timesteps": 256,
    "seed": 2,
    "lookback_days": 400,
    "holdout_days": 90,
}
MOMENTUM = {"lookback": 20, "skip": 1, "k": 1, "rebalance": "weekly"}


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def resources(mongo_resource: MongoResource, universe: UniverseResource) -> dict:
    return {"mongo": mongo_resource, "universe": universe}


@pytest.fixture
def equity_bars(mongo_db: Database) -> dict[str, pd.DataFrame]:
    """About 600 days of AAPL and SPY (the small universe's equities)."""
    today = pd.Timestamp.now(tz="UTC").date()
    start = (pd.Timestamp(today) - pd.Timedelta(days=600)).date()
    out = {}
    for symbol in ("AAPL", "SPY"):
        bars = SyntheticSource(seed=5).bars(symbol, start, today)
        BarsRepository(mongo_db).upsert(bars, symbol=symbol, source="test", batch_id="t")
        out[symbol] = bars
    return out


def _materialize(assets: list, resources: dict, instance) -> dg.ExecuteInJobResult:
    return dg.materialize(
        assets,
        resources=resources,
        instance=instance,
        run_config={"ops": {a.key.path[-1]: {"config": CONFIG} for a in assets}},
    )


def _promote_momentum_study(db: Database) -> None:
    """A promoted portfolio study of the equity universe (the optimizer's row contract)."""
    db.studies.insert_one(
        {
            "study_name": "xs_momentum-equity-pf",
            "strategy": "xs_momentum",
            "asset_class": "equity",
            "objective": "sharpe",
            "portfolio": True,
            "symbols": ["AAPL", "SPY"],
            "best_params": MOMENTUM,
            "promotion": {"promoted": True, "trial": 3},
        }
    )
    db.trials.insert_one(
        {
            "study_name": "xs_momentum-equity-pf",
            "number": 3,
            "state": "COMPLETE",
            "feasible": True,
            "params": MOMENTUM,
            "oos_metrics": {"sharpe": 1.0},
        }
    )


def test_portfolio_policy_replays_against_the_equal_weight_benchmark_when_none_is_promoted(
    resources: dict, instance, mongo_db: Database, equity_bars, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.delenv("QP_POLICY_SIGNING_KEY", raising=False)
    result = _materialize([rl_portfolio_policy, rl_portfolio_policy_replay], resources, instance)
    assert result.success
    events = {e.asset_key.to_user_string(): e for e in result.get_asset_materialization_events()}
    trained = events["rl_portfolio_policy"].materialization.metadata
    meta = events["rl_portfolio_policy_replay"].materialization.metadata
    record = mongo_db.rl_policies.find_one({"kind": "portfolio"})
    assert record["policy_id"] == trained["policy_id"].value == meta["policy_id"].value
    assert record["format"] == "safetensors+json/1" and len(record["signature"]) == 64
    assert record["universe"] == ["AAPL", "SPY"] and meta["symbols"].value == "AAPL, SPY"
    assert meta["compared_with"].value == "equal-weight benchmark"
    assert meta["strategy_promoted"].value is False
    assert meta["env_engine_gap"].value <= 1e-9
    replay = record["replay"]
    assert meta["sharpe"].value == pytest.approx(replay["sharpe"])
    assert replay["drawdown_compliant"] == (abs(replay["max_drawdown"]) <= replay["drawdown_limit"])
    books = [r.data["book"] for r in meta["metrics"].value.records]
    assert books == ["policy", "equal-weight benchmark"]
    assert "data:image/png;base64," in meta["equity_curve"].value


def test_portfolio_policy_replays_against_the_best_promoted_portfolio_strategy(
    resources: dict, instance, mongo_db: Database, equity_bars, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    _promote_momentum_study(mongo_db)
    result = _materialize([rl_portfolio_policy, rl_portfolio_policy_replay], resources, instance)
    assert result.success
    meta = next(
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "rl_portfolio_policy_replay"
    )
    assert meta["compared_with"].value == "xs_momentum-equity-pf #3 (xs_momentum)"
    assert meta["strategy_promoted"].value is True
    rows = {r.data["book"]: r.data for r in meta["metrics"].value.records}
    assert set(rows) == {
        "policy",
        "xs_momentum-equity-pf #3 (xs_momentum)",
        "equal-weight benchmark",
    }
    # The strategy's row is the strategy booked on the same held-out bars.
    holdout = pd.Timestamp(mongo_db.rl_policies.find_one({"kind": "portfolio"})["holdout_start"])
    holdout = holdout.tz_localize("UTC") if holdout.tzinfo is None else holdout
    expected = strategy_replay(
        "xs_momentum", MOMENTUM, equity_bars, start=holdout, costs=FlatCosts(), asset_class="equity"
    )
    strategy_row = rows["xs_momentum-equity-pf #3 (xs_momentum)"]
    assert strategy_row["sharpe"] == pytest.approx(expected.metrics["sharpe"], rel=1e-9)
    assert strategy_row["total_return"] == pytest.approx(expected.metrics["total_return"], rel=1e-9)
    assert expected.metrics["turnover"] > 0  # it traded on the held-out bars
