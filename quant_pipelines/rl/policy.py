"""``TrainedPolicy``: an SB3 model with everything needed to replay, store and audit it.

A policy is stored as safetensors weights plus signed JSON metadata (see ``rl.artifact``);
:meth:`TrainedPolicy.save` only writes the trainer's own local SB3 checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import safetensors.torch
from stable_baselines3.common.base_class import BaseAlgorithm

from quant_pipelines._utils.jsonsafe import json_safe
from quant_pipelines.rl._envs import simulator_kwargs
from quant_pipelines.rl.hashing import sha256_bytes
from quant_pipelines.simulator import TradingSimulator

META_VERSION = 1


@dataclass
class TrainedPolicy:
    """A trained Stable-Baselines3 model and its metadata.

    Attributes:
        model: The SB3 model.
        algo: "ppo", "a2c", "dqn" or "sac".
        seed: Training seed.
        action_space: "discrete" or "continuous".
        total_timesteps: Timesteps requested by the last ``train`` call.
        num_timesteps: The model's timestep counter (carries on across resumed runs).
        env_config: Simulator configuration (observation config, reward, costs, limits).
        hyperparams: SB3 hyperparameters used.
        guardrails: The guardrail limits of training (``Guardrails.to_dict()``).
        obs_norm: Frozen VecNormalize observation statistics (``mean``, ``var``, ``clip_obs``,
            ``epsilon``) when training normalised observations, else None.
        checkpoints: Checkpoint paths written during training, oldest first.
        best_model_path: EvalCallback's best model on the validation range, if any.
        metrics: Training metrics (episodes, lengths, rewards, evaluations, stop reason, ...).
        run_dir: Directory of the training run.
        path: The local SB3 checkpoint zip written by the trainer (None for a policy loaded
            from a store: stored policies are never zips).
        sha256: SHA-256 of the policy's safetensors weights (what a store signs).
        policy_id: Id given by the policy store, when stored.
    """

    model: BaseAlgorithm
    algo: str
    seed: int
    action_space: str
    total_timesteps: int
    num_timesteps: int
    env_config: dict[str, Any]
    hyperparams: dict[str, Any] = field(default_factory=dict)
    guardrails: dict[str, Any] = field(default_factory=dict)
    obs_norm: dict[str, Any] | None = None
    checkpoints: list[str] = field(default_factory=list)
    best_model_path: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    run_dir: str | None = None
    path: str | None = None
    sha256: str | None = None
    policy_id: str | None = None

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """Apply the frozen observation normalisation of training (identity without it)."""
        if self.obs_norm is None:
            return obs
        n = self.obs_norm
        mean = np.asarray(n["mean"], dtype=np.float64)
        std = np.sqrt(np.asarray(n["var"], dtype=np.float64) + n["epsilon"])
        clip = n["clip_obs"]
        return np.clip((obs - mean) / std, -clip, clip).astype(np.float32)

    def predict(self, obs: np.ndarray, *, deterministic: bool = True) -> np.ndarray:
        """The model's action for one (unnormalised) simulator observation."""
        action, _ = self.model.predict(self.normalize(obs), deterministic=deterministic)
        return action

    def make_env(self, bars: pd.DataFrame, **overrides: Any) -> TradingSimulator:
        """A simulator over ``bars`` configured as in training (``overrides`` win)."""
        return TradingSimulator(bars, **simulator_kwargs(self.env_config, **overrides))

    def meta(self) -> dict[str, Any]:
        """JSON-friendly metadata (everything but the model) for a policy store."""
        return {
            "meta_version": META_VERSION,
            "algo": self.algo,
            "seed": self.seed,
            "action_space": self.action_space,
            "total_timesteps": self.total_timesteps,
            "num_timesteps": self.num_timesteps,
            "env_config": self.env_config,
            "hyperparams": json_safe(self.hyperparams, nonfinite="keep"),
            "guardrails": self.guardrails,
            "obs_norm": self.obs_norm,
            "checkpoints": list(self.checkpoints),
            "best_model_path": self.best_model_path,
            "metrics": json_safe(self.metrics, nonfinite="keep"),
            "run_dir": self.run_dir,
            "sha256": self.sha256,
            "policy_id": self.policy_id,
        }

    def weights_sha256(self) -> str:
        """SHA-256 of the safetensors weights of the model's policy network."""
        return sha256_bytes(weights_bytes(self.model))

    def save(self, path: str | Path) -> str:
        """Write the trainer's local SB3 checkpoint zip and a ``.json`` metadata sidecar.

        The zip is for this machine only (resuming a run); it is never stored nor loaded from
        a store, which keeps safetensors weights and signed JSON (``rl.artifact``) instead.

        Returns:
            The SHA-256 of the policy's safetensors weights (also set as ``sha256``).
        """
        p = Path(path).with_suffix(".zip")
        p.parent.mkdir(parents=True, exist_ok=True)
        self.model.save(p)
        self.path = str(p)
        self.sha256 = self.weights_sha256()
        p.with_suffix(".json").write_text(json.dumps(self.meta(), indent=2, sort_keys=True))
        return self.sha256


def weights_bytes(model: BaseAlgorithm) -> bytes:
    """safetensors bytes of ``model.policy.state_dict()`` (contiguous CPU copies)."""
    state = {k: v.detach().cpu().clone().contiguous() for k, v in model.policy.state_dict().items()}
    return safetensors.torch.save(state)
