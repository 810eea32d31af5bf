"""Every guardrail is enforced: refused before the start, or stopped/raised during training."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

from quant_pipelines.rl import (
    GuardrailError,
    Guardrails,
    RLEngine,
    TrainingDivergedError,
    preflight,
    rss_mb,
)
from quant_pipelines.simulator import TradingSimulator
from quant_pipelines.simulator._synthetic import random_walk_bars
from quant_pipelines_tests.rl_tests._params import TINY_PPO

FAST = {"algo": "ppo", "seed": 0, "hyperparams": TINY_PPO, "validation_fraction": 0.0}


class _Hook(BaseCallback):
    """Runs ``fn(self)`` on every step / rollout start (test instrumentation)."""

    def __init__(self, on_step=None, on_rollout_start=None) -> None:
        super().__init__()
        self.step_fn, self.rollout_fn, self.seen = on_step, on_rollout_start, []
        self.keep: list[object] = []

    def _on_step(self) -> bool:
        if self.step_fn:
            self.step_fn(self)
        return True

    def _on_rollout_start(self) -> None:
        if self.rollout_fn:
            self.rollout_fn(self)


@pytest.mark.parametrize(
    ("guardrails", "kwargs", "match"),
    [
        (Guardrails(max_timesteps=1_000), {"total_timesteps": 1_001, "n_envs": 1}, "max_timesteps"),
        (Guardrails(max_envs=2), {"total_timesteps": 10, "n_envs": 3}, "max_envs"),
        (
            Guardrails(torch_threads=(os.cpu_count() or 1) + 1),
            {"total_timesteps": 10, "n_envs": 1},
            "torch_threads",
        ),
        (Guardrails(max_rss_mb=1.0), {"total_timesteps": 10, "n_envs": 1}, "max_rss_mb"),
    ],
)
def test_preflight_refuses(guardrails: Guardrails, kwargs: dict, match: str) -> None:
    with pytest.raises(GuardrailError, match=match):
        preflight(guardrails, **kwargs)


def test_engine_refuses_before_building_anything(
    engine: RLEngine, bars: pd.DataFrame, tmp_path: Path
) -> None:
    with pytest.raises(GuardrailError, match="max_envs"):
        engine.train(bars, total_timesteps=128, n_envs=3, **FAST)
    with pytest.raises(GuardrailError, match="max_timesteps"):
        engine.train(bars, total_timesteps=10**9, **FAST)
    assert not any(tmp_path.iterdir())  # no run directory was created


def test_guardrail_values_are_validated() -> None:
    with pytest.raises(ValueError, match="max_envs"):
        Guardrails(max_envs=0)
    with pytest.raises(ValueError, match="max_drawdown"):
        Guardrails(max_drawdown=0.0)
    assert Guardrails.from_dict(Guardrails(max_envs=1).to_dict()) == Guardrails(max_envs=1)


def test_timestep_cap_stops_mid_rollout(engine: RLEngine, bars: pd.DataFrame) -> None:
    # PPO rounds 300 up to three 128-step rollouts (384); the cap stops at exactly 300.
    policy = engine.train(
        bars, total_timesteps=300, guardrails=Guardrails(max_timesteps=300), **FAST
    )
    assert policy.num_timesteps == 300
    assert policy.metrics["stop_reason"] == "max_timesteps"


def test_wall_clock_budget_stops_cleanly_with_a_checkpoint(
    engine: RLEngine, bars: pd.DataFrame
) -> None:
    policy = engine.train(
        bars, total_timesteps=200_000, guardrails=Guardrails(wall_clock_seconds=0.5), **FAST
    )
    m = policy.metrics
    assert m["stop_reason"] == "wall_clock"
    assert 0 < policy.num_timesteps < 200_000
    assert m["wall_seconds"] < 5.0
    last = Path(policy.checkpoints[-1])
    assert last.exists() and last.name == f"ppo_{policy.num_timesteps}_steps.zip"


@pytest.mark.parametrize("threads", sorted({1, min(2, os.cpu_count() or 1)}))
def test_torch_thread_cap_is_applied_and_restored(
    engine: RLEngine, bars: pd.DataFrame, threads: int
) -> None:
    before = torch.get_num_threads()
    hook = _Hook(on_step=lambda cb: cb.seen.append(torch.get_num_threads()))
    policy = engine.train(
        bars,
        total_timesteps=128,
        guardrails=Guardrails(torch_threads=threads),
        callbacks=[hook],
        **FAST,
    )
    assert set(hook.seen) == {threads}
    assert policy.metrics["torch_threads"] == threads
    assert torch.get_num_threads() == before


def test_rss_limit_stops_training_with_a_checkpoint(engine: RLEngine, bars: pd.DataFrame) -> None:
    limit = rss_mb() + 150.0

    def allocate(cb: _Hook) -> None:
        if cb.n_calls == 64:
            cb.keep.append(np.ones(40_000_000))  # 320 MB, touched

    hook = _Hook(on_step=allocate)
    policy = engine.train(
        bars,
        total_timesteps=1_024,
        guardrails=Guardrails(max_rss_mb=limit, rss_check_interval=16),
        callbacks=[hook],
        **FAST,
    )
    hook.keep.clear()
    assert policy.metrics["stop_reason"] == "max_rss"
    assert policy.metrics["peak_rss_mb"] > limit
    assert 64 <= policy.num_timesteps <= 64 + 16
    assert Path(policy.checkpoints[-1]).name == f"ppo_{policy.num_timesteps}_steps.zip"


def test_env_drawdown_limit_is_applied_in_training(engine: RLEngine) -> None:
    crash = random_walk_bars(400, seed=3, drift=-0.01, volatility=0.005)
    policy = engine.train(
        crash,
        total_timesteps=256,
        guardrails=Guardrails(max_drawdown=0.05),
        env_options={"episode_length": 100},
        **FAST,
    )
    assert policy.env_config["max_drawdown"] == 0.05
    m = policy.metrics
    assert m["drawdown_terminations"] >= 1
    assert m["ep_len_mean"] < 100


def _poison(cb: _Hook) -> None:
    if cb.model.num_timesteps >= 128:
        with torch.no_grad():
            next(cb.model.policy.parameters()).fill_(float("nan"))


@pytest.mark.parametrize(
    ("interval", "match"), [(1, "non-finite policy parameters"), (256, "training diverged")]
)
def test_nan_parameters_raise(
    engine: RLEngine, bars: pd.DataFrame, interval: int, match: str
) -> None:
    # interval 1: the NaN guard's scan at the rollout start catches it; 256: the forward pass
    # fails first and the engine turns the error into TrainingDivergedError.
    with pytest.raises(TrainingDivergedError, match=match):
        engine.train(
            bars,
            total_timesteps=512,
            guardrails=Guardrails(nan_check_interval=interval),
            callbacks=[_Hook(on_rollout_start=_poison)],
            **FAST,
        )


def test_nan_loss_raises_unless_disabled(engine: RLEngine, bars: pd.DataFrame) -> None:
    def nan_loss(cb: _Hook) -> None:
        if cb.model.num_timesteps >= 128:
            cb.model.logger.record("train/loss", float("nan"))

    with pytest.raises(TrainingDivergedError, match="train/loss"):
        engine.train(
            bars, total_timesteps=512, callbacks=[_Hook(on_rollout_start=nan_loss)], **FAST
        )
    policy = engine.train(
        bars,
        total_timesteps=256,
        guardrails=Guardrails(stop_on_nan=False),
        callbacks=[_Hook(on_rollout_start=nan_loss)],
        **FAST,
    )
    assert policy.num_timesteps == 256


def test_nan_reward_from_the_env_raises(
    engine: RLEngine, bars: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(TradingSimulator, "_differential_sharpe", lambda self, r: float("nan"))
    with pytest.raises(TrainingDivergedError, match="nan"):
        engine.train(bars, total_timesteps=128, env_options={"reward": "sharpe"}, **FAST)
