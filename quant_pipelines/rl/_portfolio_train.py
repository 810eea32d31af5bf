"""Training a portfolio policy: PPO (or A2C, SAC) on ``PortfolioSimulator`` under the guardrails.

The run mirrors ``RLEngine.train`` (``rl._training``): :func:`~quant_pipelines.rl.guardrails.
preflight` refuses a request over a limit; training episodes start at seeded random bars of the
leading part of the union of sessions and the deterministic policy is evaluated on the rest
(``EvalCallback`` with early stopping); ``GuardrailCallback`` enforces the timestep cap, the
wall-clock budget, the RSS limit and torch's thread count, ``NaNGuard`` stops on NaN/inf, and
the envs' drawdown limit is the guardrails' ``max_drawdown``. Envs run in a ``DummyVecEnv``;
resuming and ``VecNormalize`` are not offered for portfolio policies.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from stable_baselines3.common.callbacks import (
    BaseCallback,
    CallbackList,
    CheckpointCallback,
    EvalCallback,
    StopTrainingOnNoModelImprovement,
)
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import DummyVecEnv

from quant_pipelines.backtest.costs import CostModel
from quant_pipelines.rl._algos import algo_class, merged_hyperparams
from quant_pipelines.rl._callbacks import GuardrailCallback, NaNGuard, TrainingStats
from quant_pipelines.rl._portfolio import (
    PORTFOLIO_ENV,
    PortfolioSpec,
    env_kwargs,
    portfolio_env_config,
)
from quant_pipelines.rl._training import _checkpoints
from quant_pipelines.rl.guardrails import Guardrails, preflight
from quant_pipelines.rl.policy import TrainedPolicy
from quant_pipelines.simulator import ObservationConfig, PortfolioSimulator


def train_portfolio(
    bars: Mapping[str, pd.DataFrame],
    *,
    total_timesteps: int,
    seed: int,
    algo: str = "ppo",
    hyperparams: Mapping[str, Any] | None = None,
    guardrails: Guardrails | None = None,
    costs: CostModel | None = None,
    action_mode: str = "softmax",
    action_scale: float = 5.0,
    max_gross_leverage: float = 1.0,
    rebalance: str = "daily",
    observation: ObservationConfig | None = None,
    episode_length: int | None = 256,
    validation_fraction: float = 0.2,
    eval_freq: int | None = None,
    patience: int = 5,
    min_evals: int = 3,
    n_envs: int = 1,
    run_dir: str | Path | None = None,
    callbacks: Sequence[BaseCallback] = (),
    verbose: int = 0,
) -> TrainedPolicy:
    """Train a portfolio policy on the leading part of ``bars``, validating on the rest.

    Args:
        bars: Bars by symbol (at least 2 symbols), laid on the union of their sessions.
        total_timesteps: Env steps to train.
        seed: Seed of the networks, the envs' random starts and exploration.
        algo: "ppo" (the default), "a2c" or "sac" (the action is a continuous weight vector).
        hyperparams: SB3 keyword arguments overriding the defaults of ``rl._algos``.
        guardrails: Resource limits; ``Guardrails()`` when None.
        costs: One cost model for every symbol (``FlatCosts()`` when None).
        action_mode: ``"softmax"`` (long-only) or ``"clip"`` (long-short); see
            :class:`~quant_pipelines.simulator.PortfolioSimulator`.
        action_scale: Softmax inverse temperature.
        max_gross_leverage: Gross exposure cap.
        rebalance: ``"daily"`` or ``"on_change"``.
        observation: Observation settings.
        episode_length: Steps per training episode.
        validation_fraction: Trailing fraction of the union of sessions evaluated (0: none).
        eval_freq: Steps between evaluations (``total_timesteps // 10`` when None).
        patience: Evaluations without improvement before stopping early.
        min_evals: Evaluations before early stopping may trigger.
        n_envs: Training envs (at most ``guardrails.max_envs``).
        run_dir: Run directory (checkpoints, best model); a temporary one when None.
        callbacks: Extra SB3 callbacks (run before the guardrail callbacks).
        verbose: SB3 verbosity.

    Returns:
        The :class:`TrainedPolicy`; its signed ``metrics["portfolio_env"]`` holds the universe.

    Raises:
        ValueError: On an algo that cannot act on weights, fewer than 2 symbols, bad options.
        GuardrailError: When the request breaks a limit.
        TrainingDivergedError: On NaN/inf losses, parameters, observations or rewards.
    """
    g = guardrails if guardrails is not None else Guardrails()
    algo = algo.lower()
    cls = algo_class(algo, "continuous")
    preflight(g, total_timesteps=total_timesteps, n_envs=n_envs)
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    spec = PortfolioSpec(
        tuple(str(s) for s in bars), action_mode, float(action_scale),
        float(max_gross_leverage), rebalance,
    )  # fmt: skip
    config = portfolio_env_config(
        costs=costs, max_drawdown=g.max_drawdown, observation=observation,
        episode_length=episode_length,
    )  # fmt: skip
    probe = PortfolioSimulator(bars, **env_kwargs(config, spec))  # validates bars and options
    n = len(probe.index)
    split = n - round(n * validation_fraction)
    if split < 2:
        raise ValueError(f"only {split} training bars; need more bars or less validation")
    run = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix=f"portfolio-{algo}-"))
    params = merged_hyperparams(algo, hyperparams)

    def factory(**overrides: Any) -> Any:
        return lambda: Monitor(PortfolioSimulator(bars, **env_kwargs(config, spec, **overrides)))

    threads_before = torch.get_num_threads()
    torch.set_num_threads(g.torch_threads)
    set_random_seed(seed)
    started = time.monotonic()
    train_env = DummyVecEnv([factory(end=split, random_start=True)] * n_envs)
    eval_env = None
    if split < n - 1:
        eval_env = DummyVecEnv([factory(start=split, episode_length=None)])
        eval_env.seed(seed + 10_007)
    try:
        model = cls("MlpPolicy", train_env, seed=seed, device="cpu", verbose=verbose, **params)
        ckpt_dir = run / "checkpoints"
        stats = TrainingStats()
        guard = GuardrailCallback(g, checkpoint_dir=str(ckpt_dir), name_prefix=algo)
        every = max((eval_freq or max(total_timesteps // 10, 1)) // n_envs, 1)
        cbs: list[BaseCallback] = [*callbacks, stats]
        cbs.append(CheckpointCallback(max(total_timesteps // 4 // n_envs, 1), str(ckpt_dir), algo))
        eval_cb = stopper = None
        if eval_env is not None:
            stopper = StopTrainingOnNoModelImprovement(patience, min_evals=min_evals)
            eval_cb = EvalCallback(
                eval_env, callback_after_eval=stopper, n_eval_episodes=1, eval_freq=every,
                best_model_save_path=str(run / "best"), deterministic=True, warn=False,
            )  # fmt: skip
            cbs.append(eval_cb)
        cbs.append(guard)
        if g.stop_on_nan:
            cbs.append(NaNGuard(g))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Training and eval env are not of the same")
            model.learn(total_timesteps, callback=CallbackList(cbs))
        wall = time.monotonic() - started
        stalled = stopper is not None and (
            stopper.no_improvement_evals > stopper.max_no_improvement_evals
        )
        metrics: dict[str, Any] = {
            **stats.summary(),
            "stop_reason": guard.stop_reason or ("no_improvement" if stalled else "completed"),
            "timesteps_run": int(model.num_timesteps),
            "wall_seconds": wall,
            "peak_rss_mb": guard.peak_rss_mb,
            "torch_threads": guard.torch_threads,
            "n_envs": n_envs,
            "train_bars": split,
            "validation_bars": n - split,
            PORTFOLIO_ENV: spec.to_dict(),
        }
        if eval_cb is not None:
            best = eval_cb.best_mean_reward
            metrics["eval_mean_rewards"] = [float(np.mean(r)) for r in eval_cb.evaluations_results]
            metrics["best_eval_reward"] = float(best) if np.isfinite(best) else None
        best_path = run / "best" / "best_model.zip"
        policy = TrainedPolicy(
            model=model,
            algo=algo,
            seed=int(seed),
            action_space="continuous",
            total_timesteps=int(total_timesteps),
            num_timesteps=int(model.num_timesteps),
            env_config=config,
            hyperparams=dict(params),
            guardrails=g.to_dict(),
            checkpoints=_checkpoints(ckpt_dir),
            best_model_path=str(best_path) if best_path.exists() else None,
            metrics=metrics,
            run_dir=str(run),
        )
        policy.save(run / "final.zip")
        return policy
    finally:
        train_env.close()
        if eval_env is not None:
            eval_env.close()
        torch.set_num_threads(threads_before)
