"""VecTradingSimulator as an SB3 VecEnv: spaces, wrappers, seeding, per-env API, refusals."""

from __future__ import annotations

import functools
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from gymnasium.wrappers import TimeLimit
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    VecCheckNan,
    VecEnv,
    VecMonitor,
    VecNormalize,
)

from quant_pipelines.backtest import Costs
from quant_pipelines.simulator import TradingSimulator, VecTradingSimulator


def _roll(venv: VecEnv, steps: int, seed: int = 0) -> list[tuple]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        if venv.action_space.shape == ():
            actions = rng.integers(0, 3, venv.num_envs)
        else:
            actions = rng.uniform(-1, 1, (venv.num_envs, 1)).astype(np.float32)
        out.append(venv.step(actions))
    return out


@pytest.mark.parametrize("action_space", ["discrete", "continuous"])
def test_spaces_and_the_vec_env_contract(bars: pd.DataFrame, action_space: str) -> None:
    single = TradingSimulator(bars, action_space=action_space)
    vec = VecTradingSimulator(bars, n_envs=3, action_space=action_space, episode_length=20)
    assert vec.observation_space == single.observation_space
    assert vec.action_space == single.action_space
    assert vec.num_envs == 3 and vec.render_mode is None
    obs = vec.reset()
    assert obs.shape == (3, *single.observation_space.shape) and obs.dtype == np.float32
    assert len(vec.reset_infos) == 3 and all(i["equity"] == 100_000.0 for i in vec.reset_infos)
    ends = 0
    for obs, rewards, dones, infos in _roll(vec, 45):
        assert all(vec.observation_space.contains(o) for o in obs)
        assert rewards.shape == dones.shape == (3,) and len(infos) == 3
        for done, info in zip(dones, infos, strict=True):
            assert ("terminal_observation" in info) == bool(done)
            if done:
                ends += 1
                assert vec.observation_space.contains(info["terminal_observation"])
                assert info["TimeLimit.truncated"]  # episode_length reached
    assert ends == 3 * 2  # two 20-step episodes each in 45 steps
    assert vec.env_is_wrapped(Monitor) == [False] * 3
    with pytest.warns(UserWarning, match="render_mode"):  # as DummyVecEnv of the single envs
        assert vec.render() is None
    vec.close()


def test_sb3_wrappers_check_nan_monitor_and_normalize(bars: pd.DataFrame) -> None:
    vec = VecTradingSimulator(bars, n_envs=4, random_start=True, episode_length=30)
    venv = VecNormalize(VecMonitor(VecCheckNan(vec, raise_exception=True)), clip_obs=10.0)
    venv.seed(1)
    venv.reset()
    episodes = []
    for _, _, dones, infos in _roll(venv, 100):
        episodes += [i["episode"] for i, d in zip(infos, dones, strict=True) if d]
    assert len(episodes) == 4 * 3 and {e["l"] for e in episodes} == {30}
    assert venv.obs_rms.count > 300 and np.abs(venv.reset()).max() <= 10.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the batched env is not Monitor-wrapped: no warning
        VecMonitor(vec)


def test_seed_reproduces_and_differs(bars: pd.DataFrame) -> None:
    def run(seed: int) -> list[int]:
        vec = VecTradingSimulator(bars, n_envs=4, random_start=True, episode_length=10)
        assert vec.seed(seed) == [seed + i for i in range(4)]
        vec.reset()
        starts = vec.get_attr("bar")
        _roll(vec, 25)  # two auto-resets each, drawing from the same generators
        return starts + vec.get_attr("bar")

    assert run(7) == run(7)
    assert run(7) != run(8)
    assert len(set(run(7)[:4])) > 1  # each env draws its own start


def test_get_set_attr_and_env_method(bars: pd.DataFrame, crash_bars: pd.DataFrame) -> None:
    vec = VecTradingSimulator({"AAPL": bars, "CRASH": crash_bars}, start=[0, 10], costs=Costs())
    ref = DummyVecEnv(
        [
            functools.partial(TradingSimulator, bars),
            functools.partial(TradingSimulator, crash_bars, start=10),
        ]
    )
    assert vec.get_attr("symbol") == ["AAPL", "CRASH"]
    for name in ("start", "end", "costs", "initial_equity", "max_drawdown", "reward_kind"):
        assert vec.get_attr(name) == ref.get_attr(name), name
    assert vec.has_attr("bar") and not vec.has_attr("no_such_attribute")
    with pytest.raises(AttributeError):
        vec.get_attr("no_such_attribute")
    assert vec.env_method("target_of", 2) == [1.0, 1.0]
    # A setting changed through set_attr acts as on the single envs.
    for venv in (vec, ref):
        venv.set_attr("max_drawdown", 0.05, indices=1)
        venv.reset()
    assert vec.get_attr("max_drawdown") == [None, 0.05]
    for _ in range(60):
        got, want = vec.step(np.array([2, 2])), ref.step(np.array([2, 2]))
        np.testing.assert_array_equal(got[2], want[2])
        np.testing.assert_array_equal(got[0], want[0])
    with pytest.raises(AttributeError, match="settable"):
        vec.set_attr("start", 5)
    with pytest.raises(ValueError, match="max_drawdown"):
        vec.set_attr("max_drawdown", 1.5)
    with pytest.raises(ValueError, match="episode_length"):
        vec.set_attr("episode_length", 0)
    # env_method("reset") restarts one env only, as on a DummyVecEnv.
    obs, info = vec.env_method("reset", seed=3, options={"start": 42}, indices=[0])[0]
    assert info["bar"] == 42 and vec.get_attr("bar")[0] == 42
    np.testing.assert_array_equal(obs, TradingSimulator(bars).reset(options={"start": 42})[0])


@pytest.mark.parametrize(
    ("actions", "match"),
    [
        (np.array([0, 1]), r"shape \(3,\)"),
        (np.array([[0], [1], [2]]), r"shape \(3,\)"),
        (np.array([0, 3, 1]), r"env 1 must be 0, 1 or 2, got 3"),
        (np.array([-1, 0, 1]), r"env 0 must be 0, 1 or 2"),
        (np.array([0.0, 1.5, 2.0]), r"env 1 must be 0, 1 or 2, got 1.5"),
        (np.array([0.0, np.nan, 2.0]), r"env 1 must be 0, 1 or 2"),
        (np.array(["a", "b", "c"]), "integers"),
    ],
    ids=["short", "column", "above", "below", "fraction", "nan", "strings"],
)
def test_bad_discrete_actions_are_refused(bars: pd.DataFrame, actions, match: str) -> None:
    vec = VecTradingSimulator(bars, n_envs=3)
    vec.reset()
    state = vec.get_attr("bar")
    with pytest.raises(ValueError, match=match):
        vec.step(actions)
    assert vec.get_attr("bar") == state  # nothing moved
    vec.step(np.array([0.0, 1.0, 2.0]))  # integral floats are fine
    assert vec.get_attr("bar") == [b + 1 for b in state]


@pytest.mark.parametrize(
    ("actions", "match"),
    [
        (np.zeros((3, 2)), r"shape \(3, 1\)"),
        (np.zeros((2, 1)), r"shape \(3, 1\)"),
        (np.array([[0.5], [np.nan], [0.1]]), "env 1 is NaN"),
        (np.array([["x"], ["y"], ["z"]]), "numbers"),
    ],
    ids=["wide", "short", "nan", "strings"],
)
def test_bad_continuous_actions_are_refused(bars: pd.DataFrame, actions, match: str) -> None:
    vec = VecTradingSimulator(bars, n_envs=3, action_space="continuous")
    vec.reset()
    with pytest.raises(ValueError, match=match):
        vec.step(actions)
    _, _, _, infos = vec.step(np.array([5.0, -0.25, 0.0]))  # out of range: clipped, as single
    assert [i["position"] for i in infos] == [1.0, -0.25, 0.0]


def test_bad_construction_is_refused(bars: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="n_envs must be a positive integer, got 0"):
        VecTradingSimulator(bars, n_envs=0)
    with pytest.raises(ValueError, match="n_envs"):
        VecTradingSimulator(bars, n_envs=True)
    with pytest.raises(ValueError, match="at least one bar frame"):
        VecTradingSimulator([])
    with pytest.raises(ValueError, match="at least one env"):
        VecTradingSimulator.from_simulators([])
    with pytest.raises(ValueError, match="start has 2 values for 3 envs"):
        VecTradingSimulator(bars, n_envs=3, start=[0, 1])
    with pytest.raises(ValueError, match="at least 2"):
        VecTradingSimulator(bars, n_envs=2, start=[0, 399])
    with pytest.raises(ValueError, match="reward"):
        VecTradingSimulator(bars, reward="pnl")
    with pytest.raises(ValueError, match="env 1 has other action"):
        VecTradingSimulator.from_simulators(
            [TradingSimulator(bars), TradingSimulator(bars, action_space="continuous")]
        )
    with pytest.raises(TypeError, match="not a TradingSimulator"):
        VecTradingSimulator.from_simulators([TimeLimit(TradingSimulator(bars), 5)])
    vec = VecTradingSimulator(bars, n_envs=2)
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(np.array([1, 1]))


def test_bad_cost_models_are_refused(bars: pd.DataFrame) -> None:
    # Volume-share costs read the bars' volume (their parity is pinned in test_vec_parity.py).
    from quant_pipelines.backtest.costs import VolumeShareCosts

    with pytest.raises(ValueError, match="no 'volume' column"):
        VecTradingSimulator(bars.drop(columns="volume"), n_envs=2, costs=VolumeShareCosts())
    bad = bars.assign(volume=bars["volume"].where(bars.index != bars.index[7], -1.0))
    with pytest.raises(
        ValueError, match=f"volume must be finite and >= 0.*{re.escape(str(bars.index[7]))}"
    ):
        VecTradingSimulator(bad, costs=VolumeShareCosts())
    with pytest.raises(TypeError, match="costs must be FlatCosts or VolumeShareCosts, got dict"):
        VecTradingSimulator(bars, costs={"commission": 0.001})
    vec = VecTradingSimulator(bars, n_envs=2, costs=VolumeShareCosts())
    assert vec.get_attr("costs") == [VolumeShareCosts()] * 2
