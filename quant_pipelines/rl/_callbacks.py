"""SB3 callbacks that enforce the guardrails and collect training metrics."""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np
import psutil
import torch
from stable_baselines3.common.callbacks import BaseCallback

from quant_pipelines.rl.guardrails import Guardrails, TrainingDivergedError, rss_mb


def params_finite(model: Any) -> bool:
    """True when every parameter of the model's policy is finite."""
    with torch.no_grad():
        return all(bool(torch.isfinite(p).all()) for p in model.policy.parameters())


class GuardrailCallback(BaseCallback):
    """Stops training at the timestep cap, the wall-clock budget or the RSS limit.

    The budget and RSS stops save a checkpoint first (``{prefix}_{steps}_steps.zip`` in
    ``checkpoint_dir``), so the work done is never lost.

    Attributes:
        stop_reason: "max_timesteps", "wall_clock" or "max_rss" once stopped, else None.
        stop_checkpoint: Path of the checkpoint saved on a budget or RSS stop.
        peak_rss_mb: Highest RSS observed (process plus env workers).
        torch_threads: Torch's thread count seen at the start of training.
    """

    def __init__(self, guardrails: Guardrails, *, checkpoint_dir: str, name_prefix: str) -> None:
        super().__init__(verbose=0)
        self.guardrails = guardrails
        self.checkpoint_dir = checkpoint_dir
        self.name_prefix = name_prefix
        self.stop_reason: str | None = None
        self.stop_checkpoint: str | None = None
        self.peak_rss_mb = 0.0
        self.torch_threads = 0
        self._start_steps = 0
        self._deadline = math.inf
        self._next_rss = 0
        self._process = psutil.Process()

    def _on_training_start(self) -> None:
        g = self.guardrails
        self._start_steps = self.model.num_timesteps
        if g.wall_clock_seconds is not None:
            self._deadline = time.monotonic() + g.wall_clock_seconds
        self.torch_threads = torch.get_num_threads()
        if self.torch_threads != g.torch_threads:  # the engine sets it; refuse to run otherwise
            raise RuntimeError(f"torch uses {self.torch_threads} threads, cap {g.torch_threads}")
        self._check_rss()

    def _check_rss(self) -> bool:
        rss = rss_mb(self._process)
        self.peak_rss_mb = max(self.peak_rss_mb, rss)
        limit = self.guardrails.max_rss_mb
        return limit is None or rss <= limit

    def _stop(self, reason: str, *, save: bool) -> bool:
        self.stop_reason = reason
        if save:
            os.makedirs(self.checkpoint_dir, exist_ok=True)
            path = os.path.join(
                self.checkpoint_dir, f"{self.name_prefix}_{self.model.num_timesteps}_steps.zip"
            )
            self.model.save(path)
            self.stop_checkpoint = path
        return False

    def _on_step(self) -> bool:
        g = self.guardrails
        if self.model.num_timesteps - self._start_steps >= g.max_timesteps:
            return self._stop("max_timesteps", save=False)
        if time.monotonic() >= self._deadline:
            return self._stop("wall_clock", save=True)
        if self.n_calls >= self._next_rss:
            self._next_rss = self.n_calls + g.rss_check_interval
            if not self._check_rss():
                return self._stop("max_rss", save=True)
        return True


class NaNGuard(BaseCallback):
    """Raises :class:`TrainingDivergedError` on a NaN/inf loss, parameter, reward or observation.

    Rewards and observations are checked at every step, before SB3 stores them. SB3 updates
    the networks between rollouts, so losses (from the logger) are checked at every rollout
    start, and parameters at most every ``nan_check_interval`` timesteps and at the end.
    """

    def __init__(self, guardrails: Guardrails) -> None:
        super().__init__(verbose=0)
        self.interval = guardrails.nan_check_interval
        self._last_scan = -math.inf

    def _check(self, *, force: bool = False) -> None:
        steps = self.model.num_timesteps
        for key, value in self.model.logger.name_to_value.items():
            if "loss" in key and not math.isfinite(float(value)):
                raise TrainingDivergedError(f"{key} is {value} at timestep {steps}")
        if force or steps - self._last_scan >= self.interval:
            self._last_scan = steps
            if not params_finite(self.model):
                raise TrainingDivergedError(f"non-finite policy parameters at timestep {steps}")

    def _on_rollout_start(self) -> None:
        self._check()

    def _on_training_end(self) -> None:
        self._check(force=True)

    def _on_step(self) -> bool:
        for name in ("rewards", "new_obs"):
            value = self.locals.get(name)
            if isinstance(value, np.ndarray) and not np.isfinite(value).all():
                bad = value[~np.isfinite(value)].flat[0]
                raise TrainingDivergedError(
                    f"{name} from the env hold {bad} at timestep {self.model.num_timesteps}"
                )
        return True


class TrainingStats(BaseCallback):
    """Collects episode lengths, returns and drawdown terminations from Monitor infos."""

    def __init__(self) -> None:
        super().__init__(verbose=0)
        self.lengths: list[int] = []
        self.returns: list[float] = []
        self.terminations = 0

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            episode = info.get("episode")
            if episode is not None:
                self.lengths.append(int(episode["l"]))
                self.returns.append(float(episode["r"]))
                if not info.get("TimeLimit.truncated", False):
                    self.terminations += 1
        return True

    def summary(self) -> dict[str, Any]:
        """Episode count, mean/std of length and return, and drawdown terminations."""
        lengths = np.asarray(self.lengths, dtype=np.float64)
        returns = np.asarray(self.returns, dtype=np.float64)

        def stat(x: np.ndarray, fn: Any) -> float | None:
            return float(fn(x)) if len(x) else None

        return {
            "episodes": len(lengths),
            "ep_len_mean": stat(lengths, np.mean),
            "ep_len_std": stat(lengths, np.std),
            "ep_reward_mean": stat(returns, np.mean),
            "ep_reward_std": stat(returns, np.std),
            "drawdown_terminations": self.terminations,
        }
