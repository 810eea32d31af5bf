"""The algorithm registry: SB3 classes, which action spaces they accept, default hyperparameters."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from stable_baselines3 import A2C, DQN, PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "dqn": DQN, "sac": SAC}
"""Algorithm name to Stable-Baselines3 class."""

SUPPORTED_ACTION_SPACES: dict[str, tuple[str, ...]] = {
    "ppo": ("discrete", "continuous"),
    "a2c": ("discrete", "continuous"),
    "dqn": ("discrete",),
    "sac": ("continuous",),
}

_NET = {"net_arch": [64, 64]}

#: Small, CPU-friendly defaults; ``hyperparams`` passed to ``train`` override them key by key
#: (``policy_kwargs`` is merged one level deeper).
DEFAULT_HYPERPARAMS: dict[str, dict[str, Any]] = {
    "ppo": {
        "n_steps": 512,
        "batch_size": 64,
        "n_epochs": 4,
        "learning_rate": 3e-4,
        "gamma": 0.99,
        "ent_coef": 0.01,
        "policy_kwargs": _NET,
    },
    "a2c": {"n_steps": 16, "learning_rate": 7e-4, "ent_coef": 0.01, "policy_kwargs": _NET},
    "dqn": {
        "learning_rate": 1e-3,
        "buffer_size": 50_000,
        "learning_starts": 500,
        "batch_size": 64,
        "train_freq": 4,
        "target_update_interval": 500,
        "exploration_fraction": 0.3,
        "exploration_final_eps": 0.05,
        "policy_kwargs": _NET,
    },
    "sac": {
        "learning_rate": 3e-4,
        "buffer_size": 50_000,
        "learning_starts": 500,
        "batch_size": 128,
        "policy_kwargs": _NET,
    },
}


def algo_class(algo: str, action_space: str | None = None) -> type[BaseAlgorithm]:
    """The SB3 class of an algorithm name, checked against the action space.

    Args:
        algo: "ppo", "a2c", "dqn" or "sac" (case-insensitive).
        action_space: "discrete" or "continuous"; not checked when None.

    Raises:
        ValueError: For an unknown algorithm, or one that cannot act in the action space
            (DQN is discrete-only, SAC continuous-only).
    """
    name = str(algo).lower()
    if name not in ALGOS:
        raise ValueError(f"unknown algo {algo!r}; choose one of {sorted(ALGOS)}")
    if action_space is not None and action_space not in SUPPORTED_ACTION_SPACES[name]:
        allowed = " or ".join(SUPPORTED_ACTION_SPACES[name])
        raise ValueError(
            f"{name} cannot be trained with action_space={action_space!r}: it supports "
            f"{allowed} actions only (dqn: discrete, sac: continuous; ppo and a2c: both)"
        )
    return ALGOS[name]


def merged_hyperparams(algo: str, hyperparams: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults of ``algo`` overridden by ``hyperparams`` (``policy_kwargs`` merged too)."""
    merged = copy.deepcopy(DEFAULT_HYPERPARAMS[algo.lower()])
    for key, value in (hyperparams or {}).items():
        if key == "policy_kwargs" and isinstance(value, Mapping):
            merged["policy_kwargs"] = {**merged.get("policy_kwargs", {}), **value}
        else:
            merged[key] = value
    for reserved in ("seed", "env", "device", "policy"):
        if reserved in merged:
            raise ValueError(f"hyperparams must not set {reserved!r}; RLEngine sets it")
    return merged
