"""The training run behind ``RLEngine.train``: envs, callbacks, learning, metrics."""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import (
    BaseCallback,
    CallbackList,
    CheckpointCallback,
    EvalCallback,
    StopTrainingOnNoModelImprovement,
)
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize

from quant_pipelines.rl._algos import algo_class
from quant_pipelines.rl._callbacks import GuardrailCallback, NaNGuard, TrainingStats, params_finite
from quant_pipelines.rl._envs import EnvFactory, make_vec_env, simulator_kwargs
from quant_pipelines.rl.guardrails import Guardrails, TrainingDivergedError
from quant_pipelines.rl.policy import TrainedPolicy


@dataclass
class RunSpec:
    """Everything one training run needs (validated by ``RLEngine.train``)."""

    bars: pd.DataFrame
    algo: str
    total_timesteps: int
    seed: int
    guardrails: Guardrails
    config: dict[str, Any]
    hyperparams: dict[str, Any]
    run_dir: Path
    split: int
    eval_freq: int
    patience: int
    min_evals: int
    checkpoint_freq: int
    n_envs: int = 1
    vec_env: str = "dummy"  # "dummy", "subproc" or "batched" (one VecTradingSimulator)
    normalize: bool = False
    resume: TrainedPolicy | str | Path | None = None
    callbacks: Sequence[BaseCallback] = field(default_factory=tuple)
    verbose: int = 0


def _wrap(venv: VecEnv, spec: RunSpec, *, training: bool) -> VecEnv:
    if spec.normalize:
        gamma = float(spec.hyperparams.get("gamma", 0.99))
        venv = VecNormalize(venv, training=training, norm_reward=training, gamma=gamma)
    return venv


def _build_envs(spec: RunSpec) -> tuple[VecEnv, VecEnv | None]:
    kwargs = simulator_kwargs(spec.config, start=0, end=spec.split, random_start=True)
    train_env = _wrap(
        make_vec_env(EnvFactory(spec.bars, kwargs), n_envs=spec.n_envs, vec_env=spec.vec_env),
        spec,
        training=True,
    )
    if spec.split >= len(spec.bars) - 1:
        return train_env, None
    eval_kwargs = simulator_kwargs(
        spec.config, start=spec.split, end=len(spec.bars), random_start=False, episode_length=None
    )
    eval_env = _wrap(DummyVecEnv([EnvFactory(spec.bars, eval_kwargs)]), spec, training=False)
    eval_env.seed(spec.seed + 10_007)
    return train_env, eval_env


def _model(spec: RunSpec, env: VecEnv) -> BaseAlgorithm:
    cls = algo_class(spec.algo, spec.config["action_space"])
    resume = spec.resume
    if resume is None:
        return cls(
            "MlpPolicy", env, seed=spec.seed, device="cpu", verbose=spec.verbose, **spec.hyperparams
        )
    if isinstance(resume, TrainedPolicy):
        model = resume.model
        model.set_env(env)
        if resume.obs_norm is not None and isinstance(env, VecNormalize):
            env.obs_rms.mean = np.asarray(resume.obs_norm["mean"], dtype=np.float64)
            env.obs_rms.var = np.asarray(resume.obs_norm["var"], dtype=np.float64)
            env.obs_rms.count = float(resume.obs_norm.get("count", 1e4))
    else:  # a checkpoint written by this engine's CheckpointCallback (a trusted local file)
        model = cls.load(str(resume), env=env, device="cpu")
    model.set_random_seed(spec.seed)
    return model


def _obs_norm(model: BaseAlgorithm) -> dict[str, Any] | None:
    vn = model.get_vec_normalize_env()
    if vn is None:
        return None
    return {
        "mean": vn.obs_rms.mean.tolist(),
        "var": vn.obs_rms.var.tolist(),
        "count": float(vn.obs_rms.count),
        "clip_obs": float(vn.clip_obs),
        "epsilon": float(vn.epsilon),
    }


def _checkpoints(directory: Path) -> list[str]:
    def steps(p: Path) -> int:
        m = re.search(r"_(\d+)_steps$", p.stem)
        return int(m.group(1)) if m else -1

    return [str(p) for p in sorted(directory.glob("*_steps.zip"), key=steps)]


def run_training(spec: RunSpec) -> TrainedPolicy:
    """Train (or resume) one policy under the guardrails and save its final model.

    Raises:
        TrainingDivergedError: On NaN/inf losses, parameters, observations or rewards.
    """
    g = spec.guardrails
    threads_before = torch.get_num_threads()
    torch.set_num_threads(g.torch_threads)
    set_random_seed(spec.seed)
    started = time.monotonic()
    train_env, eval_env = _build_envs(spec)
    try:
        model = _model(spec, train_env)
        start_steps = model.num_timesteps
        ckpt_dir = spec.run_dir / "checkpoints"
        stats = TrainingStats()
        guard = GuardrailCallback(g, checkpoint_dir=str(ckpt_dir), name_prefix=spec.algo)
        callbacks: list[BaseCallback] = [*spec.callbacks, stats]
        callbacks.append(
            CheckpointCallback(
                save_freq=max(spec.checkpoint_freq // spec.n_envs, 1),
                save_path=str(ckpt_dir),
                name_prefix=spec.algo,
            )
        )
        eval_cb = stopper = None
        if eval_env is not None:
            stopper = StopTrainingOnNoModelImprovement(spec.patience, min_evals=spec.min_evals)
            eval_cb = EvalCallback(
                eval_env,
                callback_after_eval=stopper,
                n_eval_episodes=1,
                eval_freq=max(spec.eval_freq // spec.n_envs, 1),
                best_model_save_path=str(spec.run_dir / "best"),
                log_path=str(spec.run_dir / "eval"),
                deterministic=True,
                verbose=0,
                warn=False,
            )
            callbacks.append(eval_cb)
        callbacks.append(guard)
        if g.stop_on_nan:
            callbacks.append(NaNGuard(g))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Training and eval env are not of the same")
            try:
                model.learn(
                    spec.total_timesteps,
                    callback=CallbackList(callbacks),
                    reset_num_timesteps=spec.resume is None,
                )
            except (ValueError, RuntimeError) as exc:
                if isinstance(exc, TrainingDivergedError) or not g.stop_on_nan:
                    raise
                if not params_finite(model):
                    raise TrainingDivergedError(
                        f"training diverged at timestep {model.num_timesteps}: {exc}"
                    ) from exc
                raise
        wall = time.monotonic() - started
        stop_reason = guard.stop_reason
        stalled = stopper is not None and (
            stopper.no_improvement_evals > stopper.max_no_improvement_evals
        )
        if stop_reason is None and stalled:
            stop_reason = "no_improvement"
        run_steps = model.num_timesteps - start_steps
        metrics: dict[str, Any] = {
            **stats.summary(),
            "stop_reason": stop_reason or "completed",
            "timesteps_run": run_steps,
            "wall_seconds": wall,
            "steps_per_second": run_steps / wall if wall > 0 else None,
            "peak_rss_mb": guard.peak_rss_mb,
            "torch_threads": guard.torch_threads,
            "n_envs": spec.n_envs,
            "vec_env": spec.vec_env,
            "train_bars": spec.split,
            "validation_bars": len(spec.bars) - spec.split,
        }
        if eval_cb is not None:
            metrics["eval_timesteps"] = [int(t) for t in eval_cb.evaluations_timesteps]
            metrics["eval_mean_rewards"] = [float(np.mean(r)) for r in eval_cb.evaluations_results]
            best = eval_cb.best_mean_reward
            metrics["best_eval_reward"] = float(best) if np.isfinite(best) else None
        best_path = spec.run_dir / "best" / "best_model.zip"
        policy = TrainedPolicy(
            model=model,
            algo=spec.algo,
            seed=spec.seed,
            action_space=spec.config["action_space"],
            total_timesteps=spec.total_timesteps,
            num_timesteps=int(model.num_timesteps),
            env_config=spec.config,
            hyperparams=dict(spec.hyperparams),
            guardrails=g.to_dict(),
            obs_norm=_obs_norm(model),
            checkpoints=_checkpoints(ckpt_dir),
            best_model_path=str(best_path) if best_path.exists() else None,
            metrics=metrics,
            run_dir=str(spec.run_dir),
        )
        policy.save(spec.run_dir / "final.zip")
        return policy
    finally:
        train_env.close()
        if eval_env is not None:
            eval_env.close()
        torch.set_num_threads(threads_before)
