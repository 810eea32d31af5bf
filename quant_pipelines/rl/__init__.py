"""RL runner: train Stable-Baselines3 policies on ``TradingSimulator``, replay them through
``run_backtest``, under enforced resource guardrails.

``RLEngine().train(bars, algo=..., total_timesteps=..., seed=...)`` returns a
:class:`TrainedPolicy`; ``RLEngine().replay(policy, bars)`` returns a ``BacktestResult``.
Persistence is optional: pass ``RLEngine(store=...)`` (see :class:`PolicyStore`).
"""

from __future__ import annotations

from quant_pipelines.rl._algos import ALGOS, DEFAULT_HYPERPARAMS, SUPPORTED_ACTION_SPACES
from quant_pipelines.rl.engine import PolicyStore, RLEngine
from quant_pipelines.rl.guardrails import (
    GuardrailError,
    Guardrails,
    TrainingDivergedError,
    preflight,
    rss_mb,
)
from quant_pipelines.rl.hashing import PolicyIntegrityError, sha256_file, verify_and_load
from quant_pipelines.rl.policy import TrainedPolicy

__all__ = [
    "ALGOS",
    "DEFAULT_HYPERPARAMS",
    "SUPPORTED_ACTION_SPACES",
    "GuardrailError",
    "Guardrails",
    "PolicyIntegrityError",
    "PolicyStore",
    "RLEngine",
    "TrainedPolicy",
    "TrainingDivergedError",
    "preflight",
    "rss_mb",
    "sha256_file",
    "verify_and_load",
]
