"""Parity: N batched envs equal N ``TradingSimulator`` s in SB3's DummyVecEnv, bit for bit.

Observations, float32 rewards (and the float64 rewards behind them), dones, infos (with
``terminal_observation`` and ``TimeLimit.truncated``) and reset infos, across auto-resets,
re-seeding, drawdown terminations and ruin, with different symbols, ranges, seeds and settings
per env, under both cost models (volume-share costs on the thin-volume CRASH and MOON bars cut
orders at the participation cap, which then carry over several steps). The backtester parity of
``test_parity.py`` then carries over; one test checks it directly on the batched env.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stable_baselines3.common.vec_env import DummyVecEnv

from quant_pipelines.backtest import Costs, run_backtest
from quant_pipelines.backtest.costs import CostModel, VolumeShareCosts
from quant_pipelines.simulator import TradingSimulator, VecTradingSimulator
from quant_pipelines.simulator import env as env_module
from quant_pipelines.simulator._synthetic import random_walk_bars


class _Recorder(gym.Wrapper):
    """Keeps the float64 reward of the last step (DummyVecEnv stores float32)."""

    last_reward = 0.0

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.last_reward = reward
        return obs, reward, terminated, truncated, info


@pytest.fixture(scope="module")
def frames(bars: pd.DataFrame, crash_bars: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """A sideways symbol, a crashing one, and a soaring one (a short position is ruined)."""
    moon = random_walk_bars(300, seed=5, drift=0.03, volatility=0.004)
    return {"AAPL": bars, "CRASH": crash_bars, "MOON": moon}


@pytest.fixture(scope="module", autouse=True)
def _features_once() -> Iterator[None]:
    """``build_features`` is a pure function: compute it once per frame (hypothesis builds many
    simulators over the same three frames)."""
    real = env_module.build_features
    cache: dict[tuple[int, Any], pd.DataFrame] = {}

    def cached(bars: pd.DataFrame, config: Any = None) -> pd.DataFrame:
        key = (id(bars), config)
        if key not in cache:
            cache[key] = real(bars, config)
        return cache[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(env_module, "build_features", cached)
        yield


def _sim(frames: dict[str, pd.DataFrame], symbol: str, **kwargs: Any) -> TradingSimulator:
    return TradingSimulator(frames[symbol], **kwargs)


def _assert_info_equal(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        if key == "terminal_observation":
            assert got[key].dtype == value.dtype
            np.testing.assert_array_equal(got[key], value)
        else:
            assert type(got[key]) is type(value) and got[key] == value, key


def _assert_same_rollout(
    vec: VecTradingSimulator,
    sims: list[TradingSimulator],
    actions: np.ndarray,
    *,
    seed: int,
    reseed_at: int | None = None,
) -> np.ndarray:
    """Step both with the same actions and compare everything; returns episodes ended per env."""
    wrapped = [_Recorder(s) for s in sims]
    ref = DummyVecEnv([functools.partial(lambda w: w, w) for w in wrapped])
    episodes = np.zeros(len(sims), dtype=int)
    for step, a in enumerate(actions):
        if step == 0 or step == reseed_at:
            vec.seed(seed + step)
            ref.seed(seed + step)
            np.testing.assert_array_equal(vec.reset(), ref.reset())
            for got, want in zip(vec.reset_infos, ref.reset_infos, strict=True):
                _assert_info_equal(got, want)
        obs, rewards, dones, infos = vec.step(a)
        want_obs, want_rewards, want_dones, want_infos = ref.step(a)
        assert obs.dtype == np.float32 and rewards.dtype == np.float32 and dones.dtype == bool
        np.testing.assert_array_equal(obs, want_obs)
        np.testing.assert_array_equal(rewards, want_rewards)
        np.testing.assert_array_equal(vec.raw_rewards, [w.last_reward for w in wrapped])
        np.testing.assert_array_equal(dones, want_dones)
        for got, want in zip(infos, want_infos, strict=True):
            _assert_info_equal(got, want)
        episodes += dones
    return episodes


def _actions(action_space: str, n: int, steps: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if action_space == "discrete":
        return rng.integers(0, 3, (steps, n))
    values = rng.uniform(-1.5, 1.5, (steps, n, 1))
    values[rng.random((steps, n, 1)) < 0.3] = 0.0  # flat, and repeated targets: no trade
    nudge = rng.random((steps, n, 1)) < 0.3  # a target inside the slippage band: no trade
    values[1:][nudge[1:]] = values[:-1][nudge[1:]] + 1e-5
    return values.astype(np.float32)


_ENV = st.fixed_dictionaries(
    {
        "symbol": st.sampled_from(["AAPL", "CRASH", "MOON"]),
        "start": st.sampled_from([0, 37, 150]),
        "length": st.sampled_from([3, 40, 140]),
        "reward": st.sampled_from(["log", "sharpe"]),
        "costs": st.sampled_from(
            [
                Costs(),
                Costs(0.0, 0.0),
                Costs(0.01, 25.0),
                VolumeShareCosts(),
                VolumeShareCosts(0.0, 0.0, impact=1.0, max_participation=0.01, window=5),
            ]
        ),
        "max_drawdown": st.sampled_from([None, 0.1, 0.5]),
        "drawdown_penalty": st.sampled_from([0.0, 2.0]),
        "episode_length": st.sampled_from([None, 7, 30]),
        "random_start": st.booleans(),
    }
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    envs=st.lists(_ENV, min_size=1, max_size=4),
    action_space=st.sampled_from(["discrete", "continuous"]),
    seed=st.integers(0, 2**31),
)
def test_batched_equals_dummy_vec_env(
    frames: dict[str, pd.DataFrame], envs: list[dict[str, Any]], action_space: str, seed: int
) -> None:
    sims = []
    for e in envs:
        spec = dict(e)
        symbol, start, length = spec.pop("symbol"), spec.pop("start"), spec.pop("length")
        end = min(start + length, len(frames[symbol]))
        sims.append(_sim(frames, symbol, action_space=action_space, start=start, end=end, **spec))
    vec = VecTradingSimulator.from_simulators(sims)
    actions = _actions(action_space, len(sims), 120, seed)
    _assert_same_rollout(vec, sims, actions, seed=seed % 1000, reseed_at=70)


MODELS: dict[str, CostModel] = {
    "flat": Costs(0.002, 5.0),
    "volume_share": VolumeShareCosts(0.002, 5.0, impact=0.5, max_participation=0.02),
}


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("action_space", ["discrete", "continuous"])
def test_constructor_with_symbols_and_per_env_ranges(
    frames: dict[str, pd.DataFrame], action_space: str, model: str
) -> None:
    starts, ends = [0, 120, 50, 10, 200], [400, 300, 90, 300, 260]
    kwargs = {"action_space": action_space, "random_start": True, "episode_length": 25}
    kwargs["costs"] = MODELS[model]
    kwargs |= {"max_drawdown": 0.2, "reward": "sharpe", "drawdown_penalty": 1.0}
    vec = VecTradingSimulator(frames, n_envs=5, start=starts, end=ends, **kwargs)
    symbols = [list(frames)[i % 3] for i in range(5)]
    assert vec.symbols == symbols
    sims = [
        TradingSimulator(frames[s], start=a, end=b, **kwargs)
        for s, a, b in zip(symbols, starts, ends, strict=True)
    ]
    episodes = _assert_same_rollout(vec, sims, _actions(action_space, 5, 200, 1), seed=9)
    assert (episodes >= 200 // 25).all()  # every env went through several auto-resets


def test_drawdown_terminations_and_ruin(frames: dict[str, pd.DataFrame]) -> None:
    # Long the crash (drawdown limit), short the soaring symbol without a limit (ruin).
    sims = [
        _sim(frames, "CRASH", max_drawdown=0.1),
        _sim(frames, "MOON", max_drawdown=None),
        _sim(frames, "AAPL", max_drawdown=None, episode_length=50),
    ]
    vec = VecTradingSimulator.from_simulators(sims)
    vec.reset()
    ruined = limited = False
    for _ in range(150):
        _, _, dones, infos = vec.step(np.array([2, 0, 1]))
        limited |= bool(dones[0]) and infos[0]["drawdown"] >= 0.1
        ruined |= bool(dones[1]) and infos[1]["equity"] == 0.0
    assert limited and ruined
    actions = np.tile([2, 0, 1], (150, 1))
    episodes = _assert_same_rollout(
        VecTradingSimulator.from_simulators(sims), sims, actions, seed=0
    )
    assert (episodes >= 1).all()


def test_forced_start_options_match(frames: dict[str, pd.DataFrame]) -> None:
    sims = [_sim(frames, "AAPL", random_start=True, episode_length=20) for _ in range(3)]
    vec = VecTradingSimulator.from_simulators(sims)
    ref = DummyVecEnv([functools.partial(lambda s: s, s) for s in copy.deepcopy(sims)])
    for venv in (vec, ref):
        venv.seed(4)
        venv.set_options([{"start": 100}, {}, {"start": 7}])
    np.testing.assert_array_equal(vec.reset(), ref.reset())
    assert [i["bar"] for i in vec.reset_infos] == [i["bar"] for i in ref.reset_infos]
    assert vec.get_attr("bar", [0, 2]) == [100, 7]


@pytest.mark.parametrize("model", list(MODELS))
def test_equity_equals_the_backtest(frames: dict[str, pd.DataFrame], model: str) -> None:
    costs = MODELS[model]
    ranges = [("AAPL", 0, 60), ("CRASH", 40, 140), ("MOON", 10, 50)]
    vec = VecTradingSimulator(
        [frames[s] for s, _, _ in ranges],
        start=[a for _, a, _ in ranges],
        end=[b for _, _, b in ranges],
        costs=costs,
    )
    vec.reset()
    equity = [[info["equity"]] for info in vec.reset_infos]
    positions: list[list[float]] = [[] for _ in ranges]
    finished = [False] * len(ranges)
    rng = np.random.default_rng(2)
    while not all(finished):
        actions = rng.integers(0, 3, len(ranges))
        _, _, dones, infos = vec.step(actions)
        for i, (a, info) in enumerate(zip(actions, infos, strict=True)):
            if not finished[i]:
                positions[i].append(vec.env_method("target_of", a, indices=i)[0])
                equity[i].append(info["equity"])
                finished[i] = bool(dones[i])
    for (symbol, start, end), eq, pos in zip(ranges, equity, positions, strict=True):
        full = np.zeros(end)  # the bars before the range warm up volume-share costs' statistics
        full[start : start + len(pos)] = pos
        result = run_backtest(frames[symbol].iloc[:end], full, costs=costs)
        np.testing.assert_array_equal(eq, result.equity.to_numpy()[start : start + len(eq)])


def test_volume_share_orders_carry_over_in_the_batch(frames: dict[str, pd.DataFrame]) -> None:
    """An order the cap cuts stays pending in the batched env as in the single one."""
    costs = MODELS["volume_share"]
    sims = [_sim(frames, "CRASH", costs=costs), _sim(frames, "MOON", costs=costs)]
    vec = VecTradingSimulator.from_simulators(sims)
    actions = np.tile([2, 0], (60, 1))  # long CRASH, short MOON: both orders beyond the cap
    _assert_same_rollout(vec, sims, actions[:1], seed=0)
    assert vec.get_attr("pending") == [True, True] == [s._book.pending for s in sims]
    _assert_same_rollout(vec, sims, actions, seed=0)
