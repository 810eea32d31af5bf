"""Deterministic policy rollouts behind ``RLEngine.replay`` and ``RLEngine.evaluate_episodes``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from quant_pipelines.rl.policy import TrainedPolicy
from quant_pipelines.simulator import TradingSimulator


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` torch threads, restoring the previous count afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def policy_positions(policy: TrainedPolicy, env: TradingSimulator) -> np.ndarray:
    """Target exposures the deterministic policy decides at each bar of ``env``'s range.

    ``positions[k]`` is decided at bar ``env.start + k``. After a termination (drawdown limit or
    ruin) the remaining positions are flat; the last bar's target is recorded though never filled.
    """
    positions = np.zeros(env.end - env.start)
    s = env.start
    with torch_threads(policy.guardrails.get("torch_threads", 1)):
        obs, _ = env.reset(seed=policy.seed)
        while True:
            action = policy.predict(obs)
            positions[env.bar - s] = env.target_of(action)
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated:
                break
            if truncated:
                positions[env.bar - s] = env.target_of(policy.predict(obs))
                break
    return positions


def episode_stats(
    policy: TrainedPolicy, env: TradingSimulator, *, n_episodes: int, seed: int
) -> dict[str, Any]:
    """Length, reward and drawdown breaches of ``n_episodes`` deterministic episodes."""
    lengths, rewards, breaches = [], [], 0
    with torch_threads(policy.guardrails.get("torch_threads", 1)):
        obs, _ = env.reset(seed=seed)
        for _ in range(n_episodes):
            total, steps, done, terminated = 0.0, 0, False, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(policy.predict(obs))
                total, steps, done = total + reward, steps + 1, terminated or truncated
            breaches += int(terminated)
            lengths.append(steps)
            rewards.append(total)
            obs, _ = env.reset()
    return {
        "n_episodes": n_episodes,
        "ep_len_mean": float(np.mean(lengths)),
        "ep_len_std": float(np.std(lengths)),
        "ep_reward_mean": float(np.mean(rewards)),
        "ep_reward_std": float(np.std(rewards)),
        "drawdown_breaches": breaches,
    }
