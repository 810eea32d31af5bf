"""Smoke test of the batched-simulator benchmark helpers (tiny sizes; no speed is asserted)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from quant_pipelines.bench._rl_vec import TimedVecEnv, _env_rates
from quant_pipelines.simulator import VecTradingSimulator


def test_env_rates_and_the_timing_wrapper(bars: pd.DataFrame) -> None:
    vec_rate, dummy_rate = _env_rates(bars, 4, repeats=1, steps=60)
    assert math.isfinite(vec_rate) and vec_rate > 0 and math.isfinite(dummy_rate) and dummy_rate > 0
    timed = TimedVecEnv(VecTradingSimulator(bars, n_envs=2, episode_length=5))
    timed.reset()
    before = timed.seconds
    _, _, dones, infos = timed.step(np.array([2, 0]))
    assert timed.seconds > before > 0.0
    assert len(infos) == 2 and not dones.any()
