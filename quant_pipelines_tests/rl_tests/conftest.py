"""Tiny, seeded fixtures for RL tests: small bars, small nets, few timesteps."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from quant_pipelines.rl import RLEngine, TrainedPolicy
from quant_pipelines.simulator._synthetic import random_walk_bars
from quant_pipelines_tests.rl_tests._params import TINY_PPO


@pytest.fixture(scope="session")
def bars() -> pd.DataFrame:
    """500 seeded random-walk daily bars (400 train, 100 validation)."""
    return random_walk_bars(500, seed=11)


@pytest.fixture
def engine(tmp_path: Path) -> RLEngine:
    """An engine without a database, writing runs under the test's tmp dir."""
    return RLEngine(workdir=tmp_path)


@pytest.fixture(scope="session")
def ppo_policy(bars: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> TrainedPolicy:
    """One small PPO policy shared by the replay and persistence tests."""
    engine = RLEngine(workdir=tmp_path_factory.mktemp("rl"))
    return engine.train(
        bars, algo="ppo", total_timesteps=512, seed=5, hyperparams=TINY_PPO, eval_freq=256
    )
