"""TradingSimulator: Gymnasium validity, actions, info, episodes, rewards and guardrails."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from quant_pipelines.backtest import Costs
from quant_pipelines.simulator import DISCRETE_TARGETS, ObservationConfig, TradingSimulator


def _run(env: TradingSimulator, actions, **reset_kwargs):
    _, info = env.reset(**reset_kwargs)
    infos, rewards = [info], []
    for a in actions:
        _, r, terminated, truncated, info = env.step(a)
        infos.append(info)
        rewards.append(r)
        if terminated or truncated:
            return infos, rewards, terminated, truncated
    return infos, rewards, False, False


@pytest.mark.parametrize("action_space", ["discrete", "continuous"])
@pytest.mark.parametrize("reward", ["log", "sharpe"])
def test_passes_gymnasium_and_sb3_checkers(
    bars: pd.DataFrame, action_space: str, reward: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a warning
        gym_check_env(
            TradingSimulator(bars, action_space=action_space, reward=reward, random_start=True),
            skip_render_check=True,
        )
        sb3_check_env(TradingSimulator(bars, action_space=action_space, reward=reward))


def test_discrete_actions_map_to_exposures(bars: pd.DataFrame) -> None:
    env = TradingSimulator(bars)
    assert env.action_space.n == 3
    assert [env.target_of(a) for a in (0, 1, 2)] == [-1.0, 0.0, 1.0] == list(DISCRETE_TARGETS)
    env.reset(seed=0)
    for action, exposure in ((2, 1.0), (0, -1.0), (1, 0.0)):
        _, _, _, _, info = env.step(np.int64(action))
        assert info["position"] == exposure
    with pytest.raises(ValueError, match="0, 1 or 2"):
        env.step(3)


def test_continuous_actions_are_clipped_exposures(bars: pd.DataFrame) -> None:
    env = TradingSimulator(bars, action_space="continuous")
    assert env.action_space.shape == (1,)
    assert env.target_of(np.array([0.25], dtype=np.float32)) == 0.25
    assert env.target_of(np.array([3.0])) == 1.0
    with pytest.raises(ValueError, match="NaN"):
        env.target_of(np.array([np.nan]))


def test_info_and_observation_carry_position_and_pnl(bars: pd.DataFrame) -> None:
    env = TradingSimulator(bars, costs=Costs(0.0, 0.0))
    obs, info = env.reset(seed=0)
    assert set(info) >= {"equity", "position", "drawdown"}
    assert info["equity"] == 100_000.0 and info["position"] == 0.0 and info["drawdown"] == 0.0
    assert obs[-2] == 0.0 and obs[-1] == 0.0
    peak = 100_000.0
    for _ in range(30):
        obs, _, _, _, info = env.step(2)
        peak = max(peak, info["equity"])
        assert obs[-2] == 1.0
        assert info["drawdown"] == pytest.approx(1 - info["equity"] / peak)
    assert obs[-1] != 0.0  # unrealised P&L of the open long
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)


def test_full_range_episode_truncates_at_end_of_data(bars: pd.DataFrame) -> None:
    env = TradingSimulator(bars)
    infos, _, terminated, truncated = _run(env, [1] * 1000, seed=0)
    assert truncated and not terminated
    assert len(infos) == len(bars)  # reset + one step per following bar
    with pytest.raises(RuntimeError, match="reset"):
        env.step(1)


def test_random_start_is_seeded_and_inside_the_range(bars: pd.DataFrame) -> None:
    env = TradingSimulator(bars, start=50, end=300, random_start=True, episode_length=40)
    starts = []
    for seed in range(20):
        env.reset(seed=seed)
        starts.append(env.bar)
    again = []
    for seed in range(20):
        env.reset(seed=seed)
        again.append(env.bar)
    assert starts == again
    assert len(set(starts)) > 5
    assert all(50 <= s <= 300 - 1 - 40 for s in starts)
    infos, _, _, truncated = _run(env, [2] * 100, seed=1)
    assert truncated and len(infos) == 41  # episode_length steps


def test_range_by_timestamp(bars: pd.DataFrame) -> None:
    env = TradingSimulator(bars, start=bars.index[100], end=bars.index[200])
    assert (env.start, env.end) == (100, 200)
    with pytest.raises(ValueError, match="at least 2"):
        TradingSimulator(bars, start=10, end=11)


def test_drawdown_guardrail_terminates(crash_bars: pd.DataFrame) -> None:
    env = TradingSimulator(crash_bars, max_drawdown=0.1)
    infos, _, terminated, truncated = _run(env, [2] * 1000, seed=0)
    assert terminated and not truncated
    assert infos[-1]["drawdown"] >= 0.1
    assert all(i["drawdown"] < 0.1 for i in infos[:-1])


def test_log_reward_sums_to_log_equity_change(bars: pd.DataFrame) -> None:
    env = TradingSimulator(bars)
    rng = np.random.default_rng(0)
    infos, rewards, _, _ = _run(env, rng.integers(0, 3, 1000), seed=0)
    assert sum(rewards) == pytest.approx(math.log(infos[-1]["equity"] / 100_000.0), abs=1e-9)


def test_differential_sharpe_and_drawdown_penalty(crash_bars: pd.DataFrame) -> None:
    actions = [2] * 100
    _, sharpe, _, _ = _run(TradingSimulator(crash_bars, reward="sharpe"), actions, seed=0)
    assert np.isfinite(sharpe).all() and np.mean(sharpe[10:]) < 0  # losing long: negative DSR
    _, plain, _, _ = _run(TradingSimulator(crash_bars), actions, seed=0)
    infos, penalised, _, _ = _run(
        TradingSimulator(crash_bars, drawdown_penalty=2.0), actions, seed=0
    )
    assert sum(penalised) < sum(plain)
    dd = np.array([i["drawdown"] for i in infos])
    expected = np.array(plain) - 2.0 * np.maximum(np.diff(dd), 0.0)
    np.testing.assert_allclose(penalised, expected, rtol=0, atol=1e-12)


def test_observation_window_is_the_precomputed_features(bars: pd.DataFrame) -> None:
    cfg = ObservationConfig(window=5)
    env = TradingSimulator(bars, observation=cfg)
    k = env.features.shape[1]
    assert env.observation_space.shape == (5 * k + 2,)
    env.reset(seed=0)
    for _ in range(60):
        obs, *_ = env.step(1)
    np.testing.assert_array_equal(obs[:-2].reshape(5, k), env.features.to_numpy()[56:61])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"action_space": "box"}, "action_space"),
        ({"reward": "pnl"}, "reward"),
        ({"max_drawdown": 1.5}, "max_drawdown"),
        ({"episode_length": 0}, "episode_length"),
    ],
)
def test_bad_arguments(bars: pd.DataFrame, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TradingSimulator(bars, **kwargs)
