"""Portfolio policies: PPO under the guardrails, signed artifacts, replay through the engine."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.backtest.costs import VolumeShareCosts
from quant_pipelines.backtest.portfolio import run_portfolio_backtest
from quant_pipelines.rl import GuardrailError, Guardrails, pack_policy, verify_and_load
from quant_pipelines.rl._jsontypes import PolicyFormatError
from quant_pipelines.rl._portfolio import portfolio_spec, replay_portfolio
from quant_pipelines.rl._portfolio_train import train_portfolio
from quant_pipelines.rl.policy import TrainedPolicy
from quant_pipelines.simulator import ObservationConfig
from quant_pipelines.simulator._synthetic import random_walk_bars
from quant_pipelines_tests.rl_tests._params import TINY_PPO

KEY = b"k" * 32
OBS = ObservationConfig(window=2)


@pytest.fixture(scope="module")
def universe() -> dict[str, pd.DataFrame]:
    """Three symbols, one missing a few sessions."""
    b = random_walk_bars(320, seed=22)
    return {
        "AAA": random_walk_bars(320, seed=21),
        "BBB": b.drop(b.index[[50, 51, 180]]),
        "CCC": random_walk_bars(320, seed=23),
    }


@pytest.fixture(scope="module")
def policy(universe: dict[str, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory):
    """A PPO portfolio policy of 256 steps with volume-share costs."""
    return train_portfolio(
        universe,
        total_timesteps=256,
        seed=3,
        hyperparams=TINY_PPO,
        guardrails=Guardrails(max_timesteps=256, max_drawdown=0.4),
        costs=VolumeShareCosts(),
        observation=OBS,
        episode_length=64,
        eval_freq=128,
        run_dir=tmp_path_factory.mktemp("portfolio"),
    )


def test_ppo_trains_under_the_guardrails(policy: TrainedPolicy) -> None:
    m = policy.metrics
    assert policy.algo == "ppo" and policy.action_space == "continuous"
    assert m["stop_reason"] == "max_timesteps" and m["timesteps_run"] >= 256
    assert m["torch_threads"] == 1 and m["peak_rss_mb"] > 0 and m["episodes"] >= 1
    assert policy.env_config["max_drawdown"] == 0.4
    assert portfolio_spec(policy).symbols == ("AAA", "BBB", "CCC")
    assert Path(policy.path).exists() and policy.checkpoints


def test_signed_artifact_round_trips_and_replays_identically(
    policy: TrainedPolicy, universe: dict[str, pd.DataFrame]
) -> None:
    artifact = pack_policy(policy, KEY, "portfolio-p1")
    loaded = verify_and_load(artifact, KEY)
    assert portfolio_spec(loaded) == portfolio_spec(policy)
    start = universe["AAA"].index[256]
    first = replay_portfolio(policy, universe, start=start)
    second = replay_portfolio(loaded, universe, start=start)
    pd.testing.assert_series_equal(first.result.equity, second.result.equity)
    pd.testing.assert_frame_equal(first.weights, second.weights)
    assert first.result.equity.index[0] >= start and first.env_gap <= 1e-9
    # The replay is the engine's booking of the recorded weights, nothing else.
    held = {s: b[b.index >= start] for s, b in universe.items()}
    again = run_portfolio_backtest(held, first.weights, costs=VolumeShareCosts(), rebalance="daily")
    np.testing.assert_array_equal(again.equity.to_numpy(), first.result.equity.to_numpy())
    assert (first.weights.to_numpy() >= 0).all() and first.weights.to_numpy().sum() > 0


def test_a_tampered_portfolio_spec_is_refused(policy: TrainedPolicy) -> None:
    artifact = pack_policy(policy, KEY, "portfolio-p2")
    forged = dataclasses.replace(artifact, spec=artifact.spec.replace('"AAA"', '"ZZZ"'))
    with pytest.raises(Exception, match="signature"):
        verify_and_load(forged, KEY)
    single = dataclasses.replace(policy, metrics={})
    with pytest.raises(PolicyFormatError, match="not a portfolio policy"):
        portfolio_spec(single)
    bad = dataclasses.replace(policy, metrics={"portfolio_env": {"symbols": ["AAA"]}})
    with pytest.raises(PolicyFormatError, match="invalid"):
        portfolio_spec(bad)


def test_replay_names_a_symbol_without_bars(
    policy: TrainedPolicy, universe: dict[str, pd.DataFrame]
) -> None:
    with pytest.raises(ValueError, match="no bars for 'BBB'"):
        replay_portfolio(policy, {"AAA": universe["AAA"], "CCC": universe["CCC"]})


def test_requests_over_a_limit_or_for_a_discrete_algo_are_refused(
    universe: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    with pytest.raises(GuardrailError, match="exceeds max_timesteps"):
        train_portfolio(
            universe, total_timesteps=1000, seed=0, guardrails=Guardrails(max_timesteps=10)
        )
    with pytest.raises(ValueError, match="dqn cannot be trained"):
        train_portfolio(universe, total_timesteps=10, seed=0, algo="dqn")
    with pytest.raises(ValueError, match="at least 2 symbols"):
        train_portfolio({"AAA": universe["AAA"]}, total_timesteps=10, seed=0, run_dir=tmp_path)
