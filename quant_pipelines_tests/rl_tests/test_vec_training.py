"""Training on the batched simulator (``vec_env="batched"``) under the engine's guardrails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from stable_baselines3.common.vec_env import VecMonitor

from quant_pipelines.backtest import BacktestResult
from quant_pipelines.rl import GuardrailError, Guardrails, RLEngine, pack_policy, verify_and_load
from quant_pipelines.rl._envs import VEC_ENVS, EnvFactory, make_vec_env, simulator_kwargs
from quant_pipelines.rl.policy import weights_bytes
from quant_pipelines.simulator import VecTradingSimulator
from quant_pipelines_tests.rl_tests._params import TINY_PPO

N_ENVS = 3
_RUNS: dict[str, dict[str, Any]] = {
    "ppo": {"action_space": "discrete", "hyperparams": {**TINY_PPO, "n_steps": 64}},
    "a2c": {"action_space": "continuous", "hyperparams": {"policy_kwargs": {"net_arch": [32]}}},
}


def _train(engine: RLEngine, bars: pd.DataFrame, algo: str, vec_env: str, tmp: Path):
    return engine.train(
        bars,
        algo=algo,
        total_timesteps=384,
        seed=7,
        n_envs=N_ENVS,
        vec_env=vec_env,
        guardrails=Guardrails(max_envs=N_ENVS),
        env_options={"episode_length": 32},
        eval_freq=192,
        run_dir=tmp / vec_env,
        **_RUNS[algo],
    )


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_training_on_the_batched_env_equals_dummy_vec_env(
    engine: RLEngine, bars: pd.DataFrame, algo: str, tmp_path: Path
) -> None:
    batched = _train(engine, bars, algo, "batched", tmp_path)
    m = batched.metrics
    assert batched.num_timesteps == 384 and m["timesteps_run"] == 384
    assert (m["vec_env"], m["n_envs"], m["stop_reason"]) == ("batched", N_ENVS, "completed")
    assert m["episodes"] >= N_ENVS * (384 // N_ENVS // 32) - N_ENVS  # VecMonitor episodes
    assert m["torch_threads"] == 1 and m["peak_rss_mb"] > 0
    assert len(m["eval_timesteps"]) == 2 and batched.checkpoints
    # Same seed, same envs one by one: the same trajectories, so the same network.
    dummy = _train(engine, bars, algo, "dummy", tmp_path)
    assert weights_bytes(batched.model) == weights_bytes(dummy.model)
    assert m["eval_mean_rewards"] == dummy.metrics["eval_mean_rewards"]
    assert m["episodes"] == dummy.metrics["episodes"]
    np.testing.assert_allclose(m["ep_reward_mean"], dummy.metrics["ep_reward_mean"], atol=1e-5)
    # The policy is an ordinary one: it replays through the backtester and stores as before.
    assert isinstance(engine.replay(batched, bars), BacktestResult)
    key = b"k" * 32
    loaded = verify_and_load(pack_policy(batched, key, f"{algo}-batched"), key)
    assert loaded.metrics["vec_env"] == "batched"
    assert loaded.weights_sha256() == batched.weights_sha256()


def test_make_vec_env_builds_one_monitored_batched_env(bars: pd.DataFrame) -> None:
    assert "batched" in VEC_ENVS
    config = {
        "action_space": "discrete",
        "observation": {},
        "reward": "log",
        "drawdown_penalty": 0.0,
        "sharpe_eta": 0.01,
        "reward_clip": 10.0,
        "initial_equity": 100_000.0,
        "episode_length": 16,
        "max_drawdown": 0.5,
        "costs": {"commission": 0.001, "slippage_bps": 2.0},
    }
    factory = EnvFactory(bars, simulator_kwargs(config, random_start=True))
    venv = make_vec_env(factory, n_envs=4, vec_env="batched")
    assert isinstance(venv, VecMonitor) and isinstance(venv.venv, VecTradingSimulator)
    assert venv.num_envs == 4 and venv.get_attr("max_drawdown") == [0.5] * 4
    plain = make_vec_env(
        EnvFactory(bars, factory.kwargs, monitor=False), n_envs=2, vec_env="batched"
    )
    assert isinstance(plain, VecTradingSimulator)
    with pytest.raises(ValueError, match="batched"):
        make_vec_env(factory, n_envs=2, vec_env="threads")


def test_batched_envs_count_against_max_envs(engine: RLEngine, bars: pd.DataFrame) -> None:
    with pytest.raises(GuardrailError, match="max_envs=2"):
        engine.train(bars, algo="ppo", total_timesteps=64, seed=0, n_envs=8, vec_env="batched")
