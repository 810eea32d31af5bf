"""A portfolio study of an asset class's partition, and the leaderboard's portfolio_backtest."""

from __future__ import annotations

import dagster as dg
import pytest
from pymongo.database import Database

from quant_pipelines.defs.optimization.assets import optimization_study
from quant_pipelines.defs.optimization.leaderboard import optimization_leaderboard
from quant_pipelines.defs.optimization.planning import request_run
from quant_pipelines.defs.resources import MongoIOManager, MongoResource, UniverseResource
from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.storage import BarsRepository

pytestmark = pytest.mark.slow

START, END = "2022-01-01", "2023-06-30"


@pytest.fixture
def equity_bars(mongo_db: Database, small_universe) -> None:
    """AAPL and SPY (the small universe's equities) in MongoDB."""
    source = SyntheticSource(seed=2)
    repo = BarsRepository(mongo_db)
    for symbol in ("AAPL", "SPY"):
        repo.upsert(source.bars(symbol, START, END), symbol=symbol, source="test", batch_id="t")


def test_portfolio_partition_study_and_leaderboard_backtest(
    mongo_resource: MongoResource, universe: UniverseResource, mongo_db, equity_bars
) -> None:
    key = dg.MultiPartitionKey({"strategy": "xs_momentum", "asset_class": "equity"})
    config = {"start": START, "end": END, "n_trials": 4, "seed": 1, "study_name": "pf-study"}
    resources = {"mongo": mongo_resource, "universe": universe}
    result = dg.materialize(
        [optimization_study],
        resources=resources,
        partition_key=key,
        run_config={"ops": {"optimization_study": {"config": config | {"portfolio": True}}}},
    )
    assert result.success
    study = mongo_db.studies.find_one({"study_name": "pf-study"})
    assert study["portfolio"] is True and study["strategy"] == "xs_momentum"
    assert study["symbols"] == ["AAPL", "SPY"]  # every equity of the universe
    assert mongo_db.trials.count_documents({"study_name": "pf-study", "portfolio": True}) == 4
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["portfolio"].value is True

    board = dg.materialize(
        [optimization_leaderboard],
        resources={"mongo": mongo_resource, "mongo_io": MongoIOManager(mongo=mongo_resource)},
    )
    assert board.success
    meta = board.get_asset_materialization_events()[0].materialization.metadata
    assert meta["portfolio_backtests"].value == 1
    text = meta["portfolio_backtest_pf-study"].value
    assert "data:image/png;base64," in text and "| AAPL |" in text and "| SPY |" in text
    stored = mongo_db.studies.find_one({"study_name": "pf-study"})["portfolio_backtest"]
    assert bytes(stored["png"]).startswith(b"\x89PNG")
    assert {r["symbol"] for r in stored["contributions"]} == {"AAPL", "SPY"}
    selected = mongo_db.studies.find_one({"study_name": "pf-study"})["promotion"]["trial"]
    assert stored["trial"] == selected
    assert stored["equity"][-1]["equity"] == pytest.approx(stored["metrics"]["final_equity"])


def test_signal_partition_with_portfolio_config_runs_signal_x_allocator(
    mongo_resource: MongoResource, universe: UniverseResource, mongo_db, equity_bars
) -> None:
    key = dg.MultiPartitionKey({"strategy": "sma_crossover", "asset_class": "equity"})
    config = {"start": START, "end": END, "n_trials": 2, "portfolio": True, "validation": "none"}
    result = dg.materialize(
        [optimization_study],
        resources={"mongo": mongo_resource, "universe": universe},
        partition_key=key,
        run_config={"ops": {"optimization_study": {"config": config}}},
    )
    assert result.success
    study = mongo_db.studies.find_one({"portfolio": True})
    assert study["strategy"] == "signal_sma_crossover"
    assert study["study_name"].startswith("signal_sma_crossover-portfolio-equity-")


def test_one_symbol_portfolio_partition_fails_naming_the_rule(
    mongo_resource: MongoResource, universe: UniverseResource, mongo_db
) -> None:
    BarsRepository(mongo_db).upsert(
        SyntheticSource(seed=2).bars("BTCUSD", START, END),
        symbol="BTCUSD",
        source="test",
        batch_id="t",
    )
    key = dg.MultiPartitionKey({"strategy": "xs_momentum", "asset_class": "crypto"})
    with pytest.raises(ValueError, match="at least 2 symbols; got 1"):
        dg.materialize(
            [optimization_study],
            resources={"mongo": mongo_resource, "universe": universe},
            partition_key=key,
            run_config={
                "ops": {
                    "optimization_study": {"config": {"n_trials": 1, "start": START, "end": END}}
                }
            },
        )


def test_a_portfolio_request_launches_the_portfolio_partition() -> None:
    request = {
        "request_id": "req_1",
        "study_name": "xs_momentum-req_1",
        "asset_classes": ["equity"],
        "params": {
            "strategy": "momentum",
            "portfolio": True,
            "portfolio_strategy": "signal_momentum",
            "symbols": ["AAPL", "SPY"],
            "start": START,
            "end": END,
            "n_trials": 3,
            "sampler": "tpe",
            "objective": "sharpe",
            "seed": 0,
            "walk_forward": False,
        },
    }
    run = request_run(request, "req_1")
    assert run.partition_key.keys_by_dimension == {"strategy": "momentum", "asset_class": "equity"}
    config = run.run_config["ops"]["optimization_study"]["config"]
    assert config["portfolio"] is True and config["portfolio_strategy"] == "signal_momentum"
