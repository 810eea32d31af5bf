"""PortfolioSimulator: parity with the portfolio engine, env checkers, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from quant_pipelines.backtest.costs import FlatCosts, VolumeShareCosts
from quant_pipelines.backtest.portfolio import run_portfolio_backtest
from quant_pipelines.simulator import ObservationConfig, PortfolioSimulator
from quant_pipelines.simulator._synthetic import random_walk_bars

OBS = ObservationConfig(window=3)
COSTS = {
    "flat": FlatCosts(commission=0.001, slippage_bps=5.0),
    "volume_share": VolumeShareCosts(impact=0.5, max_participation=0.05, window=10),
}


@pytest.fixture(scope="module")
def universe() -> dict[str, pd.DataFrame]:
    """Three symbols on different calendars: one misses sessions, one starts late."""
    a = random_walk_bars(260, seed=1)
    b = random_walk_bars(260, seed=2)
    c = random_walk_bars(260, seed=3)
    b = b.drop(b.index[[5, 6, 40, 41, 42, 120, 200]])
    c = c.iloc[30:]
    for frame in (a, b, c):  # small volumes: the participation cap binds at times
        frame["volume"] = frame["volume"] / 50.0
    return {"AAA": a, "BBB": b, "CCC": c}


def _walk(env: PortfolioSimulator, seed: int) -> tuple[np.ndarray, list[float], int]:
    """Random actions from bar 0: the targets per bar, equities, and the last bar reached."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((len(env.index), len(env.symbols)))
    _, info = env.reset(seed=seed)
    equity = [info["equity"]]
    prev = np.zeros(env.action_space.shape, dtype=np.float32)
    done = False
    while not done:
        t = env.bar
        action = rng.uniform(-1.0, 1.0, env.action_space.shape).astype(np.float32)
        if rng.random() < 0.3:  # repeat the previous targets now and then (on_change: no trade)
            action = prev
        prev = action
        _, _, terminated, truncated, info = env.step(action)
        rows[t] = info["targets"]
        equity.append(info["equity"])
        done = terminated or truncated
    return rows, equity, env.bar


@pytest.mark.parametrize("cost", sorted(COSTS))
@pytest.mark.parametrize("rebalance", ["daily", "on_change"])
@pytest.mark.parametrize(("mode", "leverage"), [("softmax", 1.0), ("clip", 1.5)])
def test_same_actions_give_the_portfolio_engines_equity(
    universe: dict[str, pd.DataFrame], cost: str, rebalance: str, mode: str, leverage: float
) -> None:
    env = PortfolioSimulator(
        universe,
        costs=COSTS[cost],
        action_mode=mode,
        max_gross_leverage=leverage,
        rebalance=rebalance,
        observation=OBS,
    )
    rows, equity, last = _walk(env, seed=7)
    assert last == len(env.index) - 1
    result = run_portfolio_backtest(
        universe,
        pd.DataFrame(rows, index=env.index, columns=list(env.symbols)),
        costs=COSTS[cost],
        max_gross_leverage=leverage,
        rebalance=rebalance,
    )
    assert len(result.fills) > 50
    np.testing.assert_allclose(equity, result.equity.to_numpy(), rtol=0.0, atol=1e-9)
    assert result.metrics["total_costs"] > 0.0
    if mode == "clip":
        assert (rows < 0).any()  # long-short
    else:
        assert (rows >= 0).all() and (rows.sum(axis=1) <= 1.0 + 1e-12).all()


@pytest.mark.parametrize("where", ["open", "close"])
def test_ruin_matches_the_engine_and_ends_the_episode(
    universe: dict[str, pd.DataFrame], where: str
) -> None:
    bars = {k: v.copy() for k, v in universe.items()}
    bars["AAA"] = random_walk_bars(260, seed=1, volatility=0.002)  # calm until the crash
    crash = bars["AAA"].index[100]
    col = "open" if where == "open" else "close"
    bars["AAA"].loc[crash, col] = bars["AAA"].loc[crash, col] * 0.1
    bars["AAA"].loc[crash, "low"] = bars["AAA"].loc[crash, ["open", "close"]].min()
    env = PortfolioSimulator(
        bars, action_mode="clip", max_gross_leverage=5.0, rebalance="on_change", observation=OBS
    )
    _, info = env.reset(seed=0)
    rows = np.zeros((len(env.index), 3))
    equity = [info["equity"]]
    terminated = False
    while not terminated:
        t = env.bar
        _, reward, terminated, truncated, info = env.step(np.array([1.0, 0.0, 0.0, 0.0]))
        rows[t] = info["targets"]
        equity.append(info["equity"])
        assert not truncated
    ruin_bar = env.bar
    assert info["ruined"] and info["equity"] == 0.0 and reward == -env.reward_clip
    assert env.index[ruin_bar] == crash
    result = run_portfolio_backtest(
        bars,
        pd.DataFrame(rows, index=env.index, columns=list(env.symbols)),
        max_gross_leverage=5.0,
        rebalance="on_change",
    )
    assert result.ruined_at == crash
    np.testing.assert_allclose(
        equity, result.equity.to_numpy()[: ruin_bar + 1], rtol=0.0, atol=1e-9
    )
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(4))


def test_passes_gymnasium_and_sb3_env_checkers(universe: dict[str, pd.DataFrame]) -> None:
    env = PortfolioSimulator(universe, observation=OBS, episode_length=20, random_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checker warning is a failure too
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True, skip_render_check=True)
    obs, _ = env.reset(seed=3)
    assert obs.shape == (3 * 3 * 14 + 4,) and env.observation_space.contains(obs)
    np.testing.assert_allclose(obs[-4:], [0.0, 0.0, 0.0, 1.0])  # flat: all cash


def test_observations_are_causal(universe: dict[str, pd.DataFrame]) -> None:
    full = PortfolioSimulator(universe, observation=OBS)
    cut = universe["AAA"].index[150]
    short = PortfolioSimulator({k: v[v.index <= cut] for k, v in universe.items()}, observation=OBS)
    t = len(short.index) - 2
    for env in (full, short):
        env.reset(options={"start": t})
    np.testing.assert_array_equal(full._observation(), short._observation())


def test_softmax_is_long_only_and_clip_caps_gross(universe: dict[str, pd.DataFrame]) -> None:
    soft = PortfolioSimulator(universe, observation=OBS)
    w = soft.target_of(np.array([1.0, -1.0, -1.0, -1.0]))
    assert w[0] > 0.99 and (w >= 0).all() and w.sum() <= 1.0
    assert soft.target_of(np.array([-1.0, -1.0, -1.0, 1.0])).sum() < 0.01  # all cash
    clip = PortfolioSimulator(universe, observation=OBS, action_mode="clip", max_gross_leverage=2)
    np.testing.assert_allclose(
        clip.target_of(np.array([1.0, -1.0, 1.0, 0.3])), [2 / 3, -2 / 3, 2 / 3]
    )
    np.testing.assert_allclose(clip.target_of(np.array([0.5, -0.25, 0.0, 0.0])), [1.0, -0.5, 0.0])


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (np.zeros(3), r"shape \(4,\).*got shape \(3,\)"),
        (np.zeros((1, 4)), r"shape \(4,\)"),
        (np.array([0.0, np.nan, 0.0, 0.0]), r"action\[1\] \(symbol 'BBB'\) is nan"),
        (np.array([0.0, 0.0, 0.0, np.inf]), r"action\[3\] \(cash\) is inf"),
    ],
    ids=["short", "2d", "nan-symbol", "inf-cash"],
)
def test_bad_actions_are_refused_clearly(
    universe: dict[str, pd.DataFrame], action: np.ndarray, message: str
) -> None:
    env = PortfolioSimulator(universe, observation=OBS)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)
    assert env.bar == env.start  # nothing was booked


def test_a_universe_of_fewer_than_two_symbols_is_refused(
    universe: dict[str, pd.DataFrame],
) -> None:
    with pytest.raises(ValueError, match=r"at least 2 symbols; got 1: \['AAA'\]"):
        PortfolioSimulator({"AAA": universe["AAA"]})
    with pytest.raises(ValueError, match="at least 2 symbols; got 0"):
        PortfolioSimulator({})
    with pytest.raises(ValueError, match=r"bars of 'BBB' have no 'volume' column"):
        PortfolioSimulator(
            {"AAA": universe["AAA"], "BBB": universe["BBB"].drop(columns="volume")},
            costs=VolumeShareCosts(),
        )
