"""RLEngine.train / replay: metadata, checkpoints, evaluation, resume, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.backtest import BacktestResult, run_backtest
from quant_pipelines.rl import RLEngine, TrainedPolicy
from quant_pipelines_tests.rl_tests._params import TINY_PPO


@pytest.mark.slow
def test_train_returns_a_policy_with_metadata(ppo_policy: TrainedPolicy) -> None:
    p = ppo_policy
    assert (p.algo, p.seed, p.action_space, p.total_timesteps) == ("ppo", 5, "discrete", 512)
    assert p.num_timesteps == 512
    assert p.env_config["observation"]["window"] == 10
    assert p.env_config["max_drawdown"] == 0.5  # the guardrail reaches the env
    assert p.hyperparams["n_steps"] == 128
    assert [Path(c).name for c in p.checkpoints] == [
        f"ppo_{n}_steps.zip" for n in (128, 256, 384, 512)
    ]
    assert p.best_model_path is not None and Path(p.best_model_path).exists()
    assert Path(p.path).exists() and len(p.sha256) == 64
    m = p.metrics
    assert m["stop_reason"] == "completed" and m["timesteps_run"] == 512
    assert m["eval_timesteps"] == [256, 512] and len(m["eval_mean_rewards"]) == 2
    assert m["episodes"] >= 1 and m["ep_len_mean"] == 256.0 and m["ep_len_std"] == 0.0
    assert m["torch_threads"] == 1 and m["peak_rss_mb"] > 0
    assert (m["train_bars"], m["validation_bars"]) == (400, 100)


def test_replay_is_a_backtest_of_the_policy_positions(
    engine: RLEngine, ppo_policy: TrainedPolicy, bars: pd.DataFrame
) -> None:
    result = engine.replay(ppo_policy, bars)
    assert isinstance(result, BacktestResult)
    assert {"sharpe", "max_drawdown"} <= set(result.metrics)
    # The policy's own positions, rerun through the backtester, give the same result.
    again = run_backtest(bars, result.positions, costs=result.costs)
    pd.testing.assert_series_equal(result.equity, again.equity)
    # And the simulator, stepped with the same actions, books the same equity.
    env = ppo_policy.make_env(bars, random_start=False, episode_length=None)
    obs, info = env.reset(seed=0)
    equity = [info["equity"]]
    for _ in range(len(bars) - 1):
        obs, _, terminated, truncated, info = env.step(ppo_policy.predict(obs))
        assert env.target_of(ppo_policy.predict(obs)) is not None
        equity.append(info["equity"])
        if terminated or truncated:
            break
    n = len(equity)
    np.testing.assert_allclose(equity, result.equity.to_numpy()[:n], rtol=0, atol=1e-9)


def test_two_replays_are_identical(
    engine: RLEngine, ppo_policy: TrainedPolicy, bars: pd.DataFrame
) -> None:
    a = engine.replay(ppo_policy, bars)
    b = engine.replay(ppo_policy, bars)
    pd.testing.assert_series_equal(a.positions, b.positions)
    pd.testing.assert_series_equal(a.equity, b.equity)
    assert a.metrics == b.metrics


def test_replay_on_a_held_out_period(
    engine: RLEngine, ppo_policy: TrainedPolicy, bars: pd.DataFrame
) -> None:
    result = engine.replay(ppo_policy, bars, start=bars.index[400])
    assert result.equity.index.equals(bars.index[400:])


@pytest.mark.slow
def test_same_seed_same_replay_metrics(engine: RLEngine, bars: pd.DataFrame) -> None:
    """Bitwise on one machine with torch_threads=1 (the default guardrail); no tolerance needed."""
    kwargs = {"algo": "ppo", "total_timesteps": 256, "seed": 9, "hyperparams": TINY_PPO}
    a = engine.replay(engine.train(bars, **kwargs), bars)
    b = engine.replay(engine.train(bars, **kwargs), bars)
    assert a.metrics == b.metrics
    pd.testing.assert_series_equal(a.positions, b.positions)
    c = engine.replay(engine.train(bars, **{**kwargs, "seed": 10}), bars)
    assert not c.positions.equals(a.positions)


def test_resume_from_checkpoint_carries_num_timesteps_on(
    engine: RLEngine, ppo_policy: TrainedPolicy, bars: pd.DataFrame
) -> None:
    checkpoint = ppo_policy.checkpoints[1]  # ppo_256_steps.zip
    resumed = engine.train(
        bars,
        algo="ppo",
        total_timesteps=256,
        seed=5,
        hyperparams=TINY_PPO,
        resume_from=checkpoint,
        validation_fraction=0.0,
    )
    assert resumed.num_timesteps == 512
    assert [Path(c).name for c in resumed.checkpoints][-1] == "ppo_512_steps.zip"
    again = engine.train(
        bars,
        algo="ppo",
        total_timesteps=128,
        seed=5,
        hyperparams=TINY_PPO,
        resume_from=resumed,
        validation_fraction=0.0,
    )
    assert again.num_timesteps == 640
    with pytest.raises(ValueError, match="resume"):
        engine.train(bars, algo="a2c", total_timesteps=128, seed=5, resume_from=resumed)


def test_early_stopping_on_no_improvement(engine: RLEngine, bars: pd.DataFrame) -> None:
    policy = engine.train(
        bars,
        algo="ppo",
        total_timesteps=2_048,
        seed=1,
        hyperparams={**TINY_PPO, "learning_rate": 0.0},  # a frozen policy never improves
        eval_freq=128,
        patience=1,
        min_evals=1,
    )
    assert policy.metrics["stop_reason"] == "no_improvement"
    assert policy.num_timesteps < 2_048
    assert len(policy.metrics["eval_timesteps"]) == 3


def test_vec_normalize_statistics_travel_with_the_policy(
    engine: RLEngine, bars: pd.DataFrame
) -> None:
    policy = engine.train(
        bars, algo="ppo", total_timesteps=256, seed=2, hyperparams=TINY_PPO, normalize=True
    )
    assert policy.obs_norm is not None
    obs = policy.make_env(bars).reset(seed=0)[0]
    normed = policy.normalize(obs)
    assert normed.shape == obs.shape and not np.array_equal(normed, obs)
    a, b = engine.replay(policy, bars), engine.replay(policy, bars)
    assert a.metrics == b.metrics


@pytest.mark.slow
def test_subproc_training_with_two_envs(engine: RLEngine, bars: pd.DataFrame) -> None:
    policy = engine.train(
        bars,
        algo="ppo",
        total_timesteps=512,
        seed=4,
        hyperparams=TINY_PPO,
        n_envs=2,
        vec_env="subproc",
        normalize=True,
        eval_freq=256,
    )
    assert policy.num_timesteps == 512
    assert policy.metrics["n_envs"] == 2
    assert isinstance(engine.replay(policy, bars), BacktestResult)


def test_evaluate_episodes_reports_length_stability(
    engine: RLEngine, ppo_policy: TrainedPolicy, bars: pd.DataFrame
) -> None:
    stats = engine.evaluate_episodes(ppo_policy, bars, n_episodes=4, seed=0, episode_length=50)
    assert stats["n_episodes"] == 4
    assert stats["ep_len_mean"] <= 50 and stats["ep_len_std"] >= 0
    assert stats == engine.evaluate_episodes(
        ppo_policy, bars, n_episodes=4, seed=0, episode_length=50
    )
