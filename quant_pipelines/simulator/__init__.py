"""The trading simulator: a Gymnasium env over bars sharing the backtester's cost and fill model.

``TradingSimulator(bars, *, costs=None, action_space="discrete", ...)``: discrete actions 0, 1
and 2 mean target exposure -1, 0 and +1 (or a continuous exposure in [-1, 1]); ``info`` carries
``equity``, ``position`` and ``drawdown`` after every step. See ``docs/simulator.md``.

``VecTradingSimulator(bars, n_envs=..., ...)`` steps N such envs at once (an SB3 ``VecEnv`` with
one compiled step over all of them), bit for bit equal to a ``DummyVecEnv`` of
``TradingSimulator`` s. See ``docs/rl.md``.
"""

from __future__ import annotations

from quant_pipelines.simulator.env import (
    ACTION_SPACES,
    DISCRETE_TARGETS,
    REWARDS,
    TradingSimulator,
)
from quant_pipelines.simulator.features import (
    BASE_FEATURES,
    ObservationConfig,
    build_features,
    feature_names,
)
from quant_pipelines.simulator.portfolio_env import PortfolioSimulator as PortfolioSimulator
from quant_pipelines.simulator.vec_env import VecTradingSimulator

__all__ = [
    "ACTION_SPACES",
    "BASE_FEATURES",
    "DISCRETE_TARGETS",
    "REWARDS",
    "ObservationConfig",
    "TradingSimulator",
    "VecTradingSimulator",
    "build_features",
    "feature_names",
]
