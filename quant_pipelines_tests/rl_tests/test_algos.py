"""Every algorithm trains and replays on its action space; mismatches fail clearly."""

from __future__ import annotations

import pandas as pd
import pytest

from quant_pipelines.backtest import BacktestResult
from quant_pipelines.rl import RLEngine
from quant_pipelines.rl._algos import algo_class, merged_hyperparams

SMALL_NET = {"net_arch": [32, 32]}
OFF_POLICY = {
    "learning_starts": 64,
    "buffer_size": 2_000,
    "batch_size": 32,
    "policy_kwargs": SMALL_NET,
}


@pytest.mark.parametrize(("algo", "action_space"), [("dqn", "continuous"), ("sac", "discrete")])
def test_algo_action_space_mismatch_is_a_clear_error(
    engine: RLEngine, bars: pd.DataFrame, algo: str, action_space: str
) -> None:
    with pytest.raises(ValueError, match=f"{algo} cannot be trained with action_space"):
        engine.train(bars, algo=algo, total_timesteps=64, seed=0, action_space=action_space)


def test_unknown_algo_and_reserved_hyperparams() -> None:
    with pytest.raises(ValueError, match="unknown algo"):
        algo_class("trpo")
    with pytest.raises(ValueError, match="seed"):
        merged_hyperparams("ppo", {"seed": 3})
    merged = merged_hyperparams("ppo", {"n_steps": 64, "policy_kwargs": {"net_arch": [8]}})
    assert merged["n_steps"] == 64 and merged["batch_size"] == 64
    assert merged["policy_kwargs"] == {"net_arch": [8]}


@pytest.mark.parametrize(
    ("algo", "action_space", "hyperparams", "steps"),
    [
        ("a2c", "discrete", {"n_steps": 16, "policy_kwargs": SMALL_NET}, 256),
        ("dqn", "discrete", {**OFF_POLICY, "target_update_interval": 64}, 256),
        ("ppo", "continuous", {"n_steps": 128, "batch_size": 64, "n_epochs": 2}, 256),
        ("sac", "continuous", OFF_POLICY, 160),
    ],
)
def test_each_algo_trains_and_replays_deterministically(
    engine: RLEngine,
    bars: pd.DataFrame,
    algo: str,
    action_space: str,
    hyperparams: dict,
    steps: int,
) -> None:
    policy = engine.train(
        bars,
        algo=algo,
        action_space=action_space,
        total_timesteps=steps,
        seed=3,
        hyperparams=hyperparams,
        validation_fraction=0.0,
    )
    assert policy.num_timesteps == steps
    assert (policy.algo, policy.action_space) == (algo, action_space)
    first, second = engine.replay(policy, bars), engine.replay(policy, bars)
    assert isinstance(first, BacktestResult)
    assert first.metrics == second.metrics
    if action_space == "discrete":
        assert set(first.positions.unique()) <= {-1.0, 0.0, 1.0}
    else:
        assert first.positions.between(-1.0, 1.0).all()
