"""Stored policies without pickles: safetensors weights + signed canonical JSON metadata.

:func:`pack_policy` turns a :class:`TrainedPolicy` into a :class:`PolicyArtifact` (weights, JSON,
HMAC signature). :func:`verify_and_load` does the reverse entirely in memory: signature first
(nothing parsed before it verifies), then the JSON through the schema of ``_spec``, then an SB3
model built from the stored spaces and hyperparameters, then ``load_state_dict`` of the
safetensors tensors. No ``pickle``, ``cloudpickle``, ``torch.load`` or zip file is involved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import safetensors.torch
from safetensors import SafetensorError
from stable_baselines3.common.base_class import BaseAlgorithm

from quant_pipelines.rl import _spec
from quant_pipelines.rl._algos import algo_class
from quant_pipelines.rl._jsontypes import encode_space
from quant_pipelines.rl.hashing import (
    PolicyIntegrityError,
    check_policy_id,
    sha256_bytes,
    sign_policy,
    verify_signature,
)
from quant_pipelines.rl.policy import TrainedPolicy, weights_bytes

FORMAT = _spec.FORMAT


@dataclass(frozen=True)
class PolicyArtifact:
    """What a policy store keeps: bytes and text only.

    Attributes:
        policy_id: The policy's id (also inside the signed ``spec``).
        weights: safetensors bytes of ``model.policy.state_dict()``.
        spec: Canonical JSON metadata (see :func:`_spec.parse_spec` for its schema).
        signature: Hex HMAC-SHA256 over the weights' SHA-256 and ``spec``.
    """

    policy_id: str
    weights: bytes
    spec: str
    signature: str

    @property
    def sha256(self) -> str:
        """SHA-256 of the weights."""
        return sha256_bytes(self.weights)

    @classmethod
    def of(cls, stored: Any) -> PolicyArtifact:
        """An artifact from a store's duck-typed record (attributes of the same names).

        Types are checked by :func:`verify_signature`, the first thing a load does.

        Raises:
            PolicyIntegrityError: If a field is missing or the id is invalid.
        """
        try:
            fields = [getattr(stored, k) for k in ("policy_id", "weights", "spec", "signature")]
        except AttributeError as exc:
            raise PolicyIntegrityError(f"the store returned no policy artifact: {exc}") from exc
        return cls(check_policy_id(fields[0]), *fields[1:])


def spec_of(policy: TrainedPolicy, policy_id: str) -> str:
    """The canonical metadata JSON of a policy under ``policy_id``.

    Raises:
        PolicyFormatError: If a hyperparameter, space or metadata value cannot be stored as
            plain JSON (such a policy is not stored rather than stored with a pickle).
    """
    model = policy.model
    aliases = type(model).policy_aliases
    if type(model.policy) is not aliases.get(_spec.POLICY_CLASS):
        raise _spec.PolicyFormatError(f"only {_spec.POLICY_CLASS} policies can be stored")
    meta = policy.meta()
    doc = {
        "format": FORMAT,
        "policy_id": policy_id,
        "algo": policy.algo,
        "policy_class": _spec.POLICY_CLASS,
        "seed": int(policy.seed),
        "action_space": policy.action_space,
        "spaces": {
            "observation": encode_space(model.observation_space),
            "action": encode_space(model.action_space),
        },
        "total_timesteps": int(policy.total_timesteps),
        "num_timesteps": int(policy.num_timesteps),
        "env_config": meta["env_config"],
        "hyperparams": _spec.encode_hyperparams(policy.algo, policy.hyperparams),
        "guardrails": meta["guardrails"],
        "obs_norm": meta["obs_norm"],
        "checkpoints": meta["checkpoints"],
        "best_model_path": meta["best_model_path"],
        "run_dir": meta["run_dir"],
        "metrics": _finite(meta["metrics"]),
    }
    try:
        text = _spec.canonical_json(doc)
    except (TypeError, ValueError) as exc:  # numpy values, NaN in env_config/guardrails ...
        raise _spec.PolicyFormatError(f"policy metadata is not plain JSON: {exc}") from exc
    _spec.parse_spec(text)  # what is stored must load: refuse it now rather than at replay
    return text


def pack_policy(policy: TrainedPolicy, key: bytes, policy_id: str) -> PolicyArtifact:
    """Weights, metadata and signature of a policy, ready for a store.

    Raises:
        PolicyIntegrityError: On a bad id or key.
        PolicyFormatError: If the policy cannot be described in plain JSON.
    """
    check_policy_id(policy_id)
    weights = weights_bytes(policy.model)
    spec = spec_of(policy, policy_id)
    return PolicyArtifact(policy_id, weights, spec, sign_policy(key, weights, spec))


def verify_and_load(
    artifact: PolicyArtifact, key: bytes, *, policy_id: str | None = None
) -> TrainedPolicy:
    """Verify a stored policy's signature, then rebuild it without deserialising objects.

    Args:
        artifact: The stored bytes and text.
        key: The signing key (never from the policy database).
        policy_id: The id the caller asked for; the signed metadata must carry it.

    Raises:
        PolicyIntegrityError: On a bad signature (checked before anything is parsed), an id
            that is invalid or differs from the signed one, or weights that do not fit the model.
        PolicyFormatError: On signed metadata that breaks the schema.
    """
    verify_signature(key, artifact.weights, artifact.spec, artifact.signature)
    spec = _spec.parse_spec(artifact.spec)
    wanted = check_policy_id(policy_id if policy_id is not None else artifact.policy_id)
    if spec["policy_id"] != wanted or artifact.policy_id != wanted:
        raise PolicyIntegrityError(
            f"policy {wanted!r} holds the signed policy {spec['policy_id']!r}; refusing it"
        )
    model = build_model(spec)
    _load_weights(model, artifact.weights)
    return TrainedPolicy(
        model=model,
        algo=spec["algo"],
        seed=spec["seed"],
        action_space=spec["action_space"],
        total_timesteps=spec["total_timesteps"],
        num_timesteps=spec["num_timesteps"],
        env_config=spec["env_config"],
        hyperparams=spec["hyperparams"],
        guardrails=spec["guardrails"],
        obs_norm=spec["obs_norm"],
        checkpoints=list(spec["checkpoints"]),
        best_model_path=spec["best_model_path"],
        metrics=spec["metrics"],
        run_dir=spec["run_dir"],
        sha256=artifact.sha256,
        policy_id=wanted,
    )


class _SpacesEnv(gym.Env):
    """An env that only has spaces: SB3 builds a model's networks from them."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        return np.zeros(self.observation_space.shape, self.observation_space.dtype), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        return self.reset()[0], 0.0, True, False, {}


def build_model(spec: dict[str, Any]) -> BaseAlgorithm:
    """A fresh SB3 model of the stored algorithm, spaces and hyperparameters (random weights).

    Raises:
        PolicyFormatError: If SB3 rejects the stored configuration.
    """
    cls = algo_class(spec["algo"], spec["action_space"])
    env = _SpacesEnv(spec["observation_space"], spec["action_space_obj"])
    try:
        model = cls(
            _spec.POLICY_CLASS, env, seed=spec["seed"], device="cpu", **spec["constructor_kwargs"]
        )
    except (TypeError, ValueError, AssertionError) as exc:
        raise _spec.PolicyFormatError(f"stored {spec['algo']} configuration: {exc}") from exc
    model.num_timesteps = spec["num_timesteps"]
    return model


def _load_weights(model: BaseAlgorithm, weights: bytes) -> None:
    try:
        tensors = safetensors.torch.load(weights)
    except (SafetensorError, ValueError) as exc:
        raise PolicyIntegrityError(f"policy weights are not valid safetensors: {exc}") from exc
    expected = model.policy.state_dict()
    if set(tensors) != set(expected):
        missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        raise PolicyIntegrityError(f"policy weights: missing {missing}, unexpected {extra}")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape or tensor.dtype != expected[name].dtype:
            raise PolicyIntegrityError(
                f"policy weights: {name} is {tensor.dtype}{list(tensor.shape)}, the model "
                f"expects {expected[name].dtype}{list(expected[name].shape)}"
            )
    model.policy.load_state_dict(tensors, strict=True)


def _finite(value: Any) -> Any:
    """JSON-ready metrics: non-finite floats become None (canonical JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
