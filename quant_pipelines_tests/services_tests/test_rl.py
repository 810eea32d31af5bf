"""``services.rl``: training and replay against the real MongoDB-wire test server."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from pymongo.database import Database

from quant_pipelines.backtest import run_backtest
from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.rl import PolicyIntegrityError, RLEngine
from quant_pipelines.rl._replay import policy_positions
from quant_pipelines.services.rl import (
    InsufficientBarsError,
    replay_policy,
    train_policy,
)
from quant_pipelines.storage import BarsRepository, GridFSPolicyStore
from quant_pipelines.storage.repositories import Repositories

pytestmark = pytest.mark.slow

KEY = b"services-test-policy-signing-key-0123456789"
NOW = pd.Timestamp("2025-06-30 15:00", tz="UTC")
#: ``NOW``'s day + 1, minus the 90 held-out days.
HOLDOUT = pd.Timestamp("2025-04-02", tz="UTC")
BUDGET = {"total_timesteps": 256, "seed": 1, "lookback_days": 500, "holdout_days": 90}


@pytest.fixture
def repos(mongo_db: Database) -> Repositories:
    """The repositories over a fresh database holding two years of BTCUSD bars."""
    bars = SyntheticSource(seed=9).bars("BTCUSD", NOW.date() - pd.Timedelta(days=700), NOW.date())
    BarsRepository(mongo_db).upsert(bars, symbol="BTCUSD", source="test", batch_id="t")
    return Repositories.over(mongo_db)


def _train(repos: Repositories, tmp_path, **overrides):
    kwargs = {**BUDGET, "max_drawdown": 0.3, **overrides}
    return train_policy(
        repos,
        "BTCUSD",
        asset_class="crypto",
        signing_key=KEY,
        run_id="abcdef1234567890",
        workdir=tmp_path,
        now=NOW,
        **kwargs,
    )


def test_train_policy_reports_its_data_and_signs_the_holdout(repos, mongo_db, tmp_path) -> None:
    report = _train(repos, tmp_path)

    bars = BarsRepository(mongo_db).read("BTCUSD", HOLDOUT - pd.Timedelta(days=500), HOLDOUT)
    assert report.holdout_start == HOLDOUT
    assert report.train_bars == len(bars) >= 200
    assert (report.train_start, report.train_end) == (bars.index[0], bars.index[-1])
    assert report.train_end < HOLDOUT
    assert report.policy_id == "BTCUSD-ppo-s1-abcdef12"
    record = mongo_db.rl_policies.find_one({"policy_id": report.policy_id})
    assert record["sha256"] == report.sha256 and record["symbol"] == "BTCUSD"
    signed = json.loads(record["spec"])["metrics"]["training_data"]
    assert signed == {
        "symbol": "BTCUSD",
        "asset_class": "crypto",
        "train_period": {"start": str(bars.index[0]), "end": str(bars.index[-1])},
        "holdout_start": HOLDOUT.isoformat(),
    }
    # The signature covers it: the policy loads under the key, and the key is not stored.
    policy = RLEngine(store=GridFSPolicyStore(mongo_db), signing_key=KEY).load(report.policy_id)
    assert policy.metrics["training_data"] == signed and policy.guardrails["max_drawdown"] == 0.3
    assert report.timesteps == policy.num_timesteps > 0
    assert report.seconds == pytest.approx(policy.metrics["wall_seconds"]) and report.seconds > 0
    assert report.stop_reason == policy.metrics["stop_reason"]
    assert report.best_eval_reward == pytest.approx(policy.metrics["best_eval_reward"])
    assert KEY.decode() not in str(list(mongo_db.rl_policies.find({})))


def test_train_policy_refuses_too_few_bars_and_stores_nothing(repos, mongo_db, tmp_path) -> None:
    with pytest.raises(InsufficientBarsError, match=r"0 bars of ETHUSD.*market_bars/crypto"):
        train_policy(
            repos, "ETHUSD", asset_class="crypto", signing_key=KEY, run_id="r" * 8, now=NOW
        )
    with pytest.raises(InsufficientBarsError, match="need >= 200"):  # 100 days before holdout
        _train(repos, tmp_path, lookback_days=100)
    assert mongo_db.rl_policies.count_documents({}) == 0


def _expected_replay(mongo_db: Database, policy_id: str, holdout: pd.Timestamp, asset_class: str):
    """The policy's positions on the held-out bars, backtested independently of the service."""
    policy = RLEngine(store=GridFSPolicyStore(mongo_db), signing_key=KEY).load(policy_id)
    bars = BarsRepository(mongo_db).read("BTCUSD", holdout - pd.Timedelta(days=90), None)
    first = bars.index[bars.index >= holdout][0]
    env = policy.make_env(
        bars,
        start=first,
        random_start=False,
        episode_length=None,
        max_drawdown=policy.env_config["max_drawdown"],
    )
    positions = policy_positions(policy, env)
    result = run_backtest(
        bars.iloc[env.start :],
        positions,
        costs=env.costs,
        initial_equity=env.initial_equity,
        asset_class=asset_class,
    )
    return result, bars


def test_replay_uses_the_signed_holdout_and_matches_a_backtest_of_its_positions(
    repos, mongo_db, tmp_path
) -> None:
    trained = _train(repos, tmp_path)
    # Unsigned descriptive fields that lie: a later holdout, and an older replayed version.
    moved = (HOLDOUT + pd.Timedelta(days=30)).to_pydatetime()
    mongo_db.rl_policies.update_one(
        {"policy_id": trained.policy_id}, {"$set": {"holdout_start": moved}}
    )
    mongo_db.rl_policies.insert_one(
        {
            "policy_id": "BTCUSD-ppo-s0-older",
            "symbol": "BTCUSD",
            "created_at": pd.Timestamp("2020-01-01", tz="UTC").to_pydatetime(),
            "replay": {"sharpe": 0.25},
        }
    )

    report = replay_policy(
        repos, "BTCUSD", asset_class="equity", signing_key=KEY, default_max_drawdown=0.9
    )

    # Signed holdout and asset class (crypto annualises over 365 days, equity over 252).
    expected, bars = _expected_replay(mongo_db, trained.policy_id, HOLDOUT, "crypto")
    assert report.policy_id == trained.policy_id
    assert report.holdout_start == HOLDOUT and report.holdout_signed is True
    assert report.held_out_start == bars.index[bars.index >= HOLDOUT][0]
    assert report.held_out_end == bars.index[-1]
    pd.testing.assert_series_equal(report.result.equity, expected.equity)
    for name in ("sharpe", "max_drawdown", "total_return", "buy_and_hold_return"):
        assert report.result.metrics[name] == pytest.approx(expected.metrics[name])
    sharpe = float(expected.metrics["sharpe"])
    assert report.drawdown_limit == 0.3  # the signed guardrail, not the default
    assert report.drawdown_compliant == (abs(float(expected.metrics["max_drawdown"])) <= 0.3)
    assert report.sharpe_change_vs_previous == pytest.approx(sharpe - 0.25)
    assert report.episode_length_mean > 0
    assert report.by_regime["n_bars"].sum() == len(report.result.returns)
    assert report.equity_png.startswith(b"\x89PNG")
    assert report.best_strategy is None and report.best_strategy_sharpe is None

    stored = mongo_db.rl_policies.find_one({"policy_id": trained.policy_id})["replay"]
    assert stored["sharpe"] == pytest.approx(sharpe) and stored["holdout_signed"] is True
    assert stored["held_out"]["start"] == str(report.held_out_start)
    period = str(bars.index[-1].date())
    kpis = {d["kpi"]: d for d in mongo_db.kpis.find({"period": period})}
    assert kpis["rl.policy_sharpe.BTCUSD"]["value"] == pytest.approx(sharpe)
    assert kpis["rl.policy_sharpe_change.BTCUSD"]["value"] == pytest.approx(sharpe - 0.25)
    assert kpis["rl.drawdown_compliance.BTCUSD"]["value"] == float(report.drawdown_compliant)
    assert kpis["rl.policy_sharpe.BTCUSD"]["details"] == {"policy_id": trained.policy_id}


def test_replay_refuses_a_policy_listed_under_another_symbol(repos, mongo_db, tmp_path) -> None:
    trained = _train(repos, tmp_path)
    mongo_db.rl_policies.update_one({"policy_id": trained.policy_id}, {"$set": {"symbol": "ETH"}})
    with pytest.raises(PolicyIntegrityError, match="signed for 'BTCUSD'"):
        replay_policy(repos, "ETH", asset_class="crypto", signing_key=KEY)
    assert "replay" not in mongo_db.rl_policies.find_one({"policy_id": trained.policy_id})
    assert mongo_db.kpis.count_documents({}) == 0
    with pytest.raises(LookupError, match="no RL policy for BTCUSD"):
        replay_policy(repos, "BTCUSD", asset_class="crypto", signing_key=KEY)


def test_a_policy_signed_without_its_data_falls_back_to_the_descriptive_holdout(
    repos, mongo_db, tmp_path
) -> None:
    trained = _train(repos, tmp_path)
    engine = RLEngine(store=GridFSPolicyStore(mongo_db), signing_key=KEY)
    legacy = engine.load(trained.policy_id)
    del legacy.metrics["training_data"]  # as stored before the data was signed
    engine.save(legacy)
    moved = HOLDOUT + pd.Timedelta(days=30)
    mongo_db.rl_policies.update_one(
        {"policy_id": trained.policy_id}, {"$set": {"holdout_start": moved.to_pydatetime()}}
    )

    report = replay_policy(repos, "BTCUSD", asset_class="crypto", signing_key=KEY)

    expected, bars = _expected_replay(mongo_db, trained.policy_id, moved, "crypto")
    assert report.holdout_start == moved and report.holdout_signed is False
    assert report.held_out_start == bars.index[bars.index >= moved][0]
    pd.testing.assert_series_equal(report.result.equity, expected.equity)
    assert report.sharpe_change_vs_previous is None
