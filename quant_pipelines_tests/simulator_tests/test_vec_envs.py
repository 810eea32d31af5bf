"""The simulator inside SB3's DummyVecEnv, SubprocVecEnv and VecNormalize."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

from quant_pipelines.simulator import TradingSimulator


def _make(bars: pd.DataFrame) -> TradingSimulator:
    return TradingSimulator(bars, random_start=True, episode_length=50)


def _roll(venv, steps: int = 120) -> np.ndarray:
    venv.seed(3)
    obs = venv.reset()
    rng = np.random.default_rng(0)
    equities = []
    for _ in range(steps):
        obs, rewards, _, infos = venv.step(rng.integers(0, 3, venv.num_envs))
        assert obs.shape == (venv.num_envs, *venv.observation_space.shape)
        assert np.isfinite(obs).all() and np.isfinite(rewards).all()
        equities.append([i["equity"] for i in infos])
    return np.array(equities)


def test_dummy_vec_env_auto_resets(bars: pd.DataFrame) -> None:
    venv = DummyVecEnv([functools.partial(_make, bars)] * 2)
    equities = _roll(venv)
    assert equities.shape == (120, 2)
    venv.close()


@pytest.mark.slow
def test_subproc_vec_env_matches_dummy(bars: pd.DataFrame) -> None:
    dummy = DummyVecEnv([functools.partial(_make, bars)] * 2)
    subproc = SubprocVecEnv([functools.partial(_make, bars)] * 2)
    try:
        np.testing.assert_array_equal(_roll(subproc), _roll(dummy))
    finally:
        subproc.close()
        dummy.close()


def test_vec_normalize(bars: pd.DataFrame) -> None:
    venv = VecNormalize(DummyVecEnv([functools.partial(_make, bars)] * 2), clip_obs=10.0)
    _roll(venv)
    assert venv.obs_rms.count > 100
    obs = venv.reset()
    assert np.abs(obs).max() <= 10.0
    venv.close()
