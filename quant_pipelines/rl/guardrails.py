"""Resource guardrails of RL training, each enforced in code (see ``docs/rl-guardrails.md``).

* Checked before training starts (:func:`preflight`, raising :class:`GuardrailError`):
  ``max_timesteps`` against the requested timesteps, ``max_envs`` against the envs asked for,
  ``torch_threads`` against the machine's CPUs, and ``max_rss_mb`` against the current RSS.
* Enforced while training (:mod:`quant_pipelines.rl._callbacks`): a timestep cap (SB3 rounds
  up to whole rollouts; the cap stops at the exact count), the wall-clock budget (stops cleanly
  and saves a checkpoint), RSS of the process and its env workers (stops and saves a
  checkpoint), torch's thread count (set for the run, restored after), and NaN/inf in the
  losses, the parameters, or the env's observations and rewards (raises
  :class:`TrainingDivergedError`).
* Enforced by the env: ``max_drawdown`` terminates an episode once breached.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any

import psutil


class GuardrailError(RuntimeError):
    """A training request or a running training broke a guardrail."""


class TrainingDivergedError(GuardrailError):
    """A loss, a parameter, an observation or a reward became NaN or infinite."""


@dataclass(frozen=True)
class Guardrails:
    """Limits on one training run.

    Attributes:
        max_timesteps: Most env steps a single ``train`` call may take.
        wall_clock_seconds: Training budget in seconds; when spent, training stops cleanly and
            a checkpoint is saved. None for no budget.
        torch_threads: Torch intra-op threads during training and replay (1..CPU count).
        max_rss_mb: Most resident memory (MiB) of the process plus its env workers; checked
            before the start and every ``rss_check_interval`` steps. None for no limit.
        max_envs: Most parallel envs.
        max_drawdown: The env's drawdown limit: an episode terminates once equity falls this
            fraction below its peak. None for no limit.
        stop_on_nan: Stop (raise :class:`TrainingDivergedError`) on NaN/inf losses, parameters,
            observations or rewards.
        rss_check_interval: Callback calls between RSS checks (each costs a ``/proc`` read).
        nan_check_interval: Timesteps between parameter scans (losses are checked at every
            rollout start).
    """

    max_timesteps: int = 2_000_000
    wall_clock_seconds: float | None = 3_600.0
    torch_threads: int = 1
    max_rss_mb: float | None = 4_096.0
    max_envs: int = 2
    max_drawdown: float | None = 0.5
    stop_on_nan: bool = True
    rss_check_interval: int = 1_000
    nan_check_interval: int = 256

    def __post_init__(self) -> None:
        for name in ("max_timesteps", "torch_threads", "max_envs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("rss_check_interval", "nan_check_interval"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in ("wall_clock_seconds", "max_rss_mb"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number or None, got {value!r}")
        if self.max_drawdown is not None and not 0.0 < self.max_drawdown <= 1.0:
            raise ValueError(f"max_drawdown must be in (0, 1] or None, got {self.max_drawdown!r}")

    def to_dict(self) -> dict[str, Any]:
        """The limits as a JSON-friendly dict (stored with the policy)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Guardrails:
        """Rebuild from :meth:`to_dict` output (None gives the defaults)."""
        return cls(**(data or {}))


def rss_mb(process: psutil.Process | None = None) -> float:
    """Resident memory in MiB of a process (this one by default) plus all its children."""
    proc = process or psutil.Process()
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:  # a worker that just exited
            continue
    return total / 2**20


def preflight(guardrails: Guardrails, *, total_timesteps: int, n_envs: int) -> None:
    """Refuse a training request that breaks a limit before anything is built.

    Args:
        guardrails: The limits.
        total_timesteps: Env steps requested.
        n_envs: Parallel envs requested.

    Raises:
        GuardrailError: Naming the limit, the requested value and the limit.
    """
    g = guardrails
    if total_timesteps < 1:
        raise GuardrailError(f"total_timesteps must be >= 1, got {total_timesteps}")
    if total_timesteps > g.max_timesteps:
        raise GuardrailError(
            f"total_timesteps={total_timesteps:,} exceeds max_timesteps={g.max_timesteps:,}"
        )
    if n_envs < 1 or n_envs > g.max_envs:
        raise GuardrailError(f"n_envs={n_envs} is outside 1..max_envs={g.max_envs}")
    cpus = os.cpu_count() or 1
    if g.torch_threads > cpus:
        raise GuardrailError(f"torch_threads={g.torch_threads} exceeds the machine's {cpus} CPU(s)")
    if g.max_rss_mb is not None:
        current = rss_mb()
        if current > g.max_rss_mb:
            raise GuardrailError(
                f"RSS is already {current:,.0f} MiB, above max_rss_mb={g.max_rss_mb:,.0f}"
            )
