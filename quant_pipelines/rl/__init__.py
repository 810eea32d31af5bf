"""RL runner: train Stable-Baselines3 policies on ``TradingSimulator``, replay them through
``run_backtest``, under enforced resource guardrails.

``RLEngine().train(bars, algo=..., total_timesteps=..., seed=...)`` returns a
:class:`TrainedPolicy`; ``RLEngine().replay(policy, bars)`` returns a ``BacktestResult``.
Persistence is optional: pass ``RLEngine(store=..., signing_key=...)`` (see :class:`PolicyStore`).
A stored policy is safetensors weights plus signed JSON metadata (:class:`PolicyArtifact`);
loading one never unpickles anything.
"""

from __future__ import annotations

from quant_pipelines.rl._algos import ALGOS, DEFAULT_HYPERPARAMS, SUPPORTED_ACTION_SPACES
from quant_pipelines.rl._spec import PolicyFormatError
from quant_pipelines.rl.artifact import PolicyArtifact, pack_policy, verify_and_load
from quant_pipelines.rl.engine import PolicyStore, RLEngine
from quant_pipelines.rl.guardrails import (
    GuardrailError,
    Guardrails,
    TrainingDivergedError,
    preflight,
    rss_mb,
)
from quant_pipelines.rl.hashing import (
    POLICY_ID_PATTERN,
    PolicyIntegrityError,
    check_policy_id,
    sha256_file,
    sign_policy,
    verify_signature,
)
from quant_pipelines.rl.policy import TrainedPolicy

__all__ = [
    "ALGOS",
    "DEFAULT_HYPERPARAMS",
    "POLICY_ID_PATTERN",
    "SUPPORTED_ACTION_SPACES",
    "GuardrailError",
    "Guardrails",
    "PolicyArtifact",
    "PolicyFormatError",
    "PolicyIntegrityError",
    "PolicyStore",
    "RLEngine",
    "TrainedPolicy",
    "TrainingDivergedError",
    "check_policy_id",
    "pack_policy",
    "preflight",
    "rss_mb",
    "sha256_file",
    "sign_policy",
    "verify_and_load",
    "verify_signature",
]
