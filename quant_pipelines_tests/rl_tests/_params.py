"""Shared small hyperparameters of the RL tests."""

from __future__ import annotations

from typing import Any

#: PPO small enough for a test: 128-step rollouts, two epochs, a 32x32 net.
TINY_PPO: dict[str, Any] = {
    "n_steps": 128,
    "batch_size": 64,
    "n_epochs": 2,
    "policy_kwargs": {"net_arch": [32, 32]},
}
