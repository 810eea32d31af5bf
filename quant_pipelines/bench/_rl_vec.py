"""Batched-simulator benchmarks of :mod:`quant_pipelines.bench.rl`.

* ``VecTradingSimulator`` env-steps/s at N = 64 against the absolute goal (1,000,000) and
  against SB3's ``DummyVecEnv`` of 64 ``TradingSimulator`` s, and at N = 16 against
  ``DummyVecEnv`` of 16 (goal 10x per env-step). Both sides step the same random actions with
  training's episode settings (random starts, 256-step episodes, 50% drawdown limit, so
  auto-resets are included); the two are measured alternately, best of the repeats.
* Default PPO (1 torch thread, the guardrail callbacks) with 16 envs built as ``RLEngine``
  builds them (``vec_env="batched"`` and ``"dummy"``): steps/s, and the env's share of
  ``learn()``'s wall time (time inside the VecEnv's ``reset``/``step_async``/``step_wait``).
"""

from __future__ import annotations

import functools
import tempfile
import time
from typing import Any

import numpy as np
import pandas as pd
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper

from quant_pipelines.bench._report import Figure
from quant_pipelines.rl._algos import DEFAULT_HYPERPARAMS
from quant_pipelines.rl._callbacks import GuardrailCallback, NaNGuard
from quant_pipelines.rl._envs import EnvFactory, make_vec_env
from quant_pipelines.rl.guardrails import Guardrails
from quant_pipelines.simulator import TradingSimulator, VecTradingSimulator

GOAL_ENV_STEPS = 1_000_000.0
_EPISODES = {"random_start": True, "episode_length": 256, "max_drawdown": 0.5}


class TimedVecEnv(VecEnvWrapper):
    """Adds up the seconds spent inside the wrapped VecEnv (reset, step_async, step_wait)."""

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        self.seconds = 0.0

    def reset(self) -> Any:
        """Timed ``reset``."""
        start = time.perf_counter()
        obs = self.venv.reset()
        self.seconds += time.perf_counter() - start
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Timed ``step_async``."""
        start = time.perf_counter()
        self.venv.step_async(actions)
        self.seconds += time.perf_counter() - start

    def step_wait(self) -> Any:
        """Timed ``step_wait``."""
        start = time.perf_counter()
        out = self.venv.step_wait()
        self.seconds += time.perf_counter() - start
        return out


def _rate(venv: VecEnv, actions: np.ndarray) -> float:
    """Env-steps/s of stepping ``venv`` through ``actions`` (one row per step)."""
    venv.seed(0)
    venv.reset()
    start = time.perf_counter()
    for a in actions:
        venv.step(a)
    return actions.size / (time.perf_counter() - start)


def _env_rates(bars: pd.DataFrame, n: int, repeats: int, steps: int) -> tuple[float, float]:
    """Best env-steps/s of VecTradingSimulator(n) and DummyVecEnv(n), measured alternately."""
    vec = VecTradingSimulator(bars, n_envs=n, **_EPISODES)
    dummy = DummyVecEnv([functools.partial(TradingSimulator, bars, **_EPISODES)] * n)
    actions = np.random.default_rng(0).integers(0, 3, (steps, n))
    _rate(vec, actions[:10])  # compile (or load) the kernel outside the timing
    best_vec = best_dummy = 0.0
    for _ in range(repeats):
        best_vec = max(best_vec, _rate(vec, actions))
        best_dummy = max(best_dummy, _rate(dummy, actions[: max(steps // 8, 50)]))
    return best_vec, best_dummy


def _ppo(bars: pd.DataFrame, n_envs: int, chunks: int) -> dict[str, tuple[float, float]]:
    """PPO steps/s and env seconds share per vec_env, learning alternately one rollout a chunk."""
    hp = dict(DEFAULT_HYPERPARAMS["ppo"])
    chunk = hp["n_steps"] * n_envs  # one rollout and its update
    kwargs = {**_EPISODES, "start": 0, "end": len(bars)}
    runs: dict[str, tuple[PPO, TimedVecEnv, list[Any]]] = {}
    elapsed: dict[str, float] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for vec_env in ("batched", "dummy"):
                venv = TimedVecEnv(
                    make_vec_env(EnvFactory(bars, kwargs), n_envs=n_envs, vec_env=vec_env)
                )
                model = PPO("MlpPolicy", venv, seed=0, device="cpu", **hp)
                g = Guardrails(max_envs=n_envs)
                callbacks = [
                    GuardrailCallback(g, checkpoint_dir=tmp, name_prefix=vec_env),
                    NaNGuard(g),
                ]
                runs[vec_env] = (model, venv, callbacks)
                elapsed[vec_env] = 0.0
            for i in range(chunks):
                for vec_env in list(runs)[i % 2 :] + list(runs)[: i % 2]:  # rotate the order
                    model, _, callbacks = runs[vec_env]
                    start = time.perf_counter()
                    model.learn(chunk, callback=callbacks, reset_num_timesteps=False)
                    elapsed[vec_env] += time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    return {
        name: (model.num_timesteps / elapsed[name], venv.seconds / elapsed[name])
        for name, (model, venv, _) in runs.items()
    }


def figures(bars: pd.DataFrame, *, quick: bool = False) -> list[Figure]:
    """The batched-simulator figures (area "rl")."""
    repeats, steps = (2, 400) if quick else (7, 2_000)
    vec64, dummy64 = _env_rates(bars, 64, repeats, steps)
    vec16, dummy16 = _env_rates(bars, 16, repeats, steps)
    ppo = _ppo(bars, 16, chunks=1 if quick else 4)
    (ppo_vec, share_vec), (ppo_dummy, share_dummy) = ppo["batched"], ppo["dummy"]
    name = "VecTradingSimulator env-steps/s (N=64, 256-step episodes, random actions)"
    return [
        Figure("rl", f"{name}, goal", vec64, "env-steps/s",
               "1,000,000 env-steps/s goal", GOAL_ENV_STEPS, goal=1.0),
        Figure("rl", name, vec64, "env-steps/s",
               "DummyVecEnv of 64 TradingSimulators", dummy64),
        Figure("rl", "VecTradingSimulator env-steps/s (N=16)", vec16, "env-steps/s",
               "DummyVecEnv of 16 TradingSimulators", dummy16, goal=10.0),
        Figure("rl", "PPO steps/s, 16 envs in one VecTradingSimulator (default PPO, guarded)",
               ppo_vec, "steps/s", "same PPO on DummyVecEnv(16)", ppo_dummy),
        Figure("rl", "env share of PPO wall time, VecTradingSimulator(16)", 100 * share_vec,
               "%", "PPO learn() wall time", 100.0),
        Figure("rl", "env share of PPO wall time, DummyVecEnv(16)", 100 * share_dummy,
               "%", "PPO learn() wall time", 100.0),
    ]  # fmt: skip
