"""RL benchmarks: simulator step speed and PPO training overhead, each against a floor env.

The floor env has the simulator's spaces but its ``step`` only indexes a precomputed numpy
array, so the ratios show what the simulator's accounting and observation building cost.
The batched simulator's figures (``VecTradingSimulator`` env-steps/s against the 1,000,000 goal
and against ``DummyVecEnv``, PPO with 16 envs and the env's share of its wall time) come from
:mod:`quant_pipelines.bench._rl_vec`, in the same run.
:func:`training_costs` measures the per-10k-timestep figures of ``docs/rl-guardrails.md``.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

from quant_pipelines.bench import _rl_vec
from quant_pipelines.bench._report import Figure, timed
from quant_pipelines.rl import RLEngine, rss_mb
from quant_pipelines.rl._algos import DEFAULT_HYPERPARAMS
from quant_pipelines.rl._callbacks import GuardrailCallback, NaNGuard
from quant_pipelines.rl.guardrails import Guardrails
from quant_pipelines.simulator import TradingSimulator
from quant_pipelines.simulator._synthetic import random_walk_bars

N_BARS = 5_000


class FloorEnv(gym.Env):
    """The cheapest env with the simulator's spaces: a step returns the next precomputed row.

    Args:
        n_bars: Rows (an episode is ``n_bars - 1`` steps).
        obs_dim: Observation size.
        seed: Seed of the random rows.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(self, n_bars: int, obs_dim: int, *, seed: int = 0) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        self._obs = np.clip(rng.standard_normal((n_bars, obs_dim)), -5, 5).astype(np.float32)
        self._last = n_bars - 1
        self._t = 0
        self.observation_space = spaces.Box(-5.0, 5.0, shape=(obs_dim,), dtype=np.float32)
        self.action_space = spaces.Discrete(3)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Back to row 0."""
        super().reset(seed=seed)
        self._t = 0
        return self._obs[0], {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Next row; truncated at the last one."""
        self._t += 1
        return self._obs[self._t], 0.0, False, self._t >= self._last, {}


def _episode_rate(env: gym.Env, actions: list[Any], repeat: int) -> float:
    def episode() -> None:
        env.reset(seed=0)
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                break

    return len(actions) / timed(episode, repeat=repeat)


def _ppo_rates(
    variants: dict[str, tuple[gym.Env, bool]], timesteps: int, *, chunk: int = 1_024
) -> dict[str, float]:
    """PPO training steps/s per variant ``name -> (env, guarded)``.

    The models learn in alternating chunks of ``chunk`` steps, in a rotating order, so a busy
    machine slows every variant alike; ``guarded`` adds the engine's guardrail callbacks.
    """
    torch.set_num_threads(1)
    hp = dict(DEFAULT_HYPERPARAMS["ppo"])
    models: dict[str, PPO] = {}
    elapsed = dict.fromkeys(variants, 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        callbacks: dict[str, list[Any] | None] = {}
        for name, (env, guarded) in variants.items():
            venv = DummyVecEnv([lambda e=env: e])
            models[name] = PPO("MlpPolicy", venv, seed=0, device="cpu", **hp)
            g = Guardrails()
            callbacks[name] = (
                [GuardrailCallback(g, checkpoint_dir=tmp, name_prefix=name), NaNGuard(g)]
                if guarded
                else None
            )
        names = list(models)
        for i in range(max(timesteps // chunk, 1)):
            for name in names[i % len(names) :] + names[: i % len(names)]:  # rotate the order
                model = models[name]
                start = time.perf_counter()
                model.learn(chunk, callback=callbacks[name], reset_num_timesteps=False)
                elapsed[name] += time.perf_counter() - start
    return {name: models[name].num_timesteps / elapsed[name] for name in models}


def run(*, quick: bool = False) -> list[Figure]:
    """Simulator steps/s and PPO steps/s, each against the floor env, plus guardrail overhead.

    Figure and reference are measured alternately (best of the repeats for env steps,
    interleaved learning chunks for PPO), so a busy machine penalises both alike.
    """
    bars = random_walk_bars(N_BARS, seed=0)
    sim = TradingSimulator(bars)
    floor = FloorEnv(N_BARS, sim.observation_space.shape[0])
    actions = list(np.random.default_rng(0).integers(0, 3, N_BARS - 1))
    floor_sps = sim_sps = 0.0
    for _ in range(2 if quick else 5):
        floor_sps = max(floor_sps, _episode_rate(floor, actions, 1))
        sim_sps = max(sim_sps, _episode_rate(sim, actions, 1))
    timesteps = 1_024 if quick else 10_240
    threads = torch.get_num_threads()
    try:
        rates = _ppo_rates(
            {
                "floor": (FloorEnv(N_BARS, sim.observation_space.shape[0]), False),
                "sim": (TradingSimulator(bars), False),
                "guarded": (TradingSimulator(bars), True),
            },
            timesteps,
        )
    finally:
        torch.set_num_threads(threads)
    ppo_floor, ppo_sim, ppo_guarded = rates["floor"], rates["sim"], rates["guarded"]
    batched = _rl_vec.figures(bars, quick=quick)
    return [
        Figure(
            "rl",
            f"TradingSimulator steps/s (discrete, {N_BARS:,} bars, random actions)",
            sim_sps,
            "steps/s",
            "floor env that only indexes a numpy array",
            floor_sps,
            goal=0.5,
        ),
        Figure(
            "rl",
            f"PPO training steps/s on the simulator ({timesteps:,} steps, 1 torch thread)",
            ppo_sim,
            "steps/s",
            "same PPO on the floor env",
            ppo_floor,
            goal=0.9,
        ),
        Figure(
            "rl",
            "PPO steps/s with the guardrail callbacks (cap, budget, RSS, NaN)",
            ppo_guarded,
            "steps/s",
            "same PPO on the simulator without them",
            ppo_sim,
            goal=None,  # ~4 µs/step against ~300 µs: below this machine's run-to-run noise
        ),
        *batched,
    ]


def _best(fn: Any, number: int) -> float:
    """Best mean seconds per call of ``fn`` over three batches of ``number`` calls."""
    return timed(lambda: [fn() for _ in range(number)], repeat=3) / number


def training_costs(*, timesteps: int = 10_000, n_bars: int = 2_000) -> list[dict[str, Any]]:
    """Measure what training and each guardrail cost per 10k timesteps on this machine.

    Trains every algorithm through ``RLEngine`` (guardrails on, no validation) and times each
    guardrail check in isolation. The figures feed ``docs/rl-guardrails.md``.

    Returns:
        Rows with ``item``, ``setting``, ``seconds_per_10k`` and, for training runs,
        ``peak_rss_mb``.
    """
    bars = random_walk_bars(n_bars, seed=0)
    scale = 10_000 / timesteps
    rows: list[dict[str, Any]] = []
    runs = [
        ("ppo", "discrete", {}, Guardrails(), 1, "dummy"),
        ("a2c", "discrete", {}, Guardrails(), 1, "dummy"),
        ("dqn", "discrete", {}, Guardrails(), 1, "dummy"),
        ("sac", "continuous", {}, Guardrails(), 1, "dummy"),
        ("ppo", "discrete", {}, Guardrails(torch_threads=2), 1, "dummy"),
        ("ppo", "discrete", {}, Guardrails(), 2, "subproc"),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        engine = RLEngine(workdir=tmp)
        for algo, space, hp, g, n_envs, vec in runs:
            policy = engine.train(
                bars,
                algo=algo,
                action_space=space,
                total_timesteps=timesteps,
                seed=0,
                hyperparams=hp,
                guardrails=g,
                n_envs=n_envs,
                vec_env=vec,
                validation_fraction=0.0,
            )
            m = policy.metrics
            rows.append(
                {
                    "item": f"train {algo}",
                    "setting": f"torch_threads={g.torch_threads}, n_envs={n_envs} ({vec})",
                    "seconds_per_10k": m["wall_seconds"] * scale,
                    "peak_rss_mb": m["peak_rss_mb"],
                }
            )
            if algo == "ppo" and n_envs == 1 and g.torch_threads == 1:
                save_s = timed(lambda p=policy: p.model.save(f"{tmp}/probe.zip"), repeat=3)
        torch.set_num_threads(1)
        guard = GuardrailCallback(Guardrails(), checkpoint_dir=tmp, name_prefix="probe")
        guard.init_callback(policy.model)  # the last (PPO) model
        guard.on_training_start({}, {})
        step_cb_s = _best(guard.on_step, 5_000)
        params = list(policy.model.policy.parameters())
        nan_scan_s = _best(lambda: all(bool(torch.isfinite(p).all()) for p in params), 200)
        rss_s = _best(rss_mb, 50)
        nan_guard = NaNGuard(Guardrails())
        nan_guard.init_callback(policy.model)
        obs = np.zeros((1, TradingSimulator(bars).observation_space.shape[0]), np.float32)
        nan_guard.update_locals({"rewards": np.zeros(1, np.float32), "new_obs": obs})
        nan_step_s = _best(nan_guard.on_step, 5_000)
    dd_s = {}
    for limit in (None, 0.5):
        sim = TradingSimulator(bars, max_drawdown=limit)
        flat = [1] * (n_bars - 1)
        dd_s[limit] = 1.0 / _episode_rate(sim, flat, 5)
    rows += [
        {
            "item": "timestep cap + wall-clock + RSS-interval checks",
            "setting": "every step",
            "seconds_per_10k": step_cb_s * 10_000,
        },
        {
            "item": "RSS read (process + env workers)",
            "setting": "every 1,000 steps",
            "seconds_per_10k": rss_s * 10,
        },
        {
            "item": "NaN parameter scan (PPO, 64x64 net)",
            "setting": "at most every 256 steps",
            "seconds_per_10k": nan_scan_s * 10_000 / 256,
        },
        {
            "item": "NaN/inf check of rewards and observations",
            "setting": "every step",
            "seconds_per_10k": nan_step_s * 10_000,
        },
        {
            "item": "env drawdown limit",
            "setting": "every step",
            "seconds_per_10k": (dd_s[0.5] - dd_s[None]) * 10_000,
        },
        {
            "item": "checkpoint save (PPO, 64x64 net)",
            "setting": "per checkpoint",
            "seconds_per_10k": save_s,
        },
    ]
    return rows
