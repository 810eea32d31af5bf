"""Simulator configuration stored with a policy, and the (vectorised) envs built from it.

``vec_env`` picks how ``n_envs`` training envs run: ``"dummy"`` (SB3's DummyVecEnv, one
``TradingSimulator`` after another), ``"subproc"`` (one process each) or ``"batched"`` (one
:class:`~quant_pipelines.simulator.VecTradingSimulator` stepping all of them at once, under SB3's
``VecMonitor``). For the same seed the batched envs produce the same observations, rewards and
episode ends as ``"dummy"``, so the choice changes speed, not the trained policy.

The cost model travels in ``env_config["costs"]`` as its fields; a model other than flat costs
also carries its tag (``"model": "volume_share"``). A config without the tag is flat costs, so
the stored specs (and signatures) of flat-cost policies are unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import pandas as pd
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecMonitor

from quant_pipelines.backtest.costs import CostModel, FlatCosts, VolumeShareCosts
from quant_pipelines.simulator import ObservationConfig, TradingSimulator, VecTradingSimulator

#: Simulator options a caller may set through ``env_options`` (the rest come from the engine).
ENV_OPTIONS: tuple[str, ...] = (
    "observation",
    "reward",
    "drawdown_penalty",
    "sharpe_eta",
    "reward_clip",
    "initial_equity",
    "episode_length",
)

DEFAULT_EPISODE_LENGTH = 256
VEC_ENVS: tuple[str, ...] = ("dummy", "subproc", "batched")

#: Cost-model tags of ``env_config["costs"]["model"]`` (no tag: flat costs).
COST_MODELS: dict[str, type[FlatCosts] | type[VolumeShareCosts]] = {
    "flat": FlatCosts,
    "volume_share": VolumeShareCosts,
}
_TAG_OF = {cls: tag for tag, cls in COST_MODELS.items()}


def costs_config(costs: CostModel) -> dict[str, Any]:
    """A cost model as JSON-friendly fields; a model other than flat costs adds its tag.

    Raises:
        TypeError: For anything but a cost model.
    """
    tag = _TAG_OF.get(type(costs))
    if tag is None:
        raise TypeError(f"costs must be FlatCosts or VolumeShareCosts, got {type(costs).__name__}")
    fields = dataclasses.asdict(costs)
    return fields if tag == "flat" else {"model": tag, **fields}


def costs_from_config(config: Mapping[str, Any]) -> CostModel:
    """The cost model of :func:`costs_config`'s fields (no ``model`` tag: flat costs).

    Raises:
        ValueError: On an unknown tag, an unknown or missing field, or a value the model refuses.
    """
    fields = dict(config)
    tag = fields.pop("model", "flat")
    cls = COST_MODELS.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise ValueError(f"costs.model must be one of {sorted(COST_MODELS)}, got {tag!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"costs: unknown fields {unknown} for {tag!r}; known: {sorted(known)}")
    return cls(**fields)


def env_config(
    *,
    action_space: str,
    costs: CostModel | None,
    max_drawdown: float | None,
    options: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The JSON-friendly simulator configuration a policy is trained (and replayed) with.

    Raises:
        ValueError: On an unknown option.
        TypeError: If ``costs`` is not a cost model.
    """
    opts = dict(options or {})
    unknown = sorted(set(opts) - set(ENV_OPTIONS))
    if unknown:
        raise ValueError(f"unknown env_options {unknown}; allowed: {list(ENV_OPTIONS)}")
    obs = opts.pop("observation", None)
    if isinstance(obs, ObservationConfig):
        obs = obs.to_dict()
    return {
        "action_space": action_space,
        "observation": ObservationConfig.from_dict(obs).to_dict(),
        "reward": opts.get("reward", "log"),
        "drawdown_penalty": float(opts.get("drawdown_penalty", 0.0)),
        "sharpe_eta": float(opts.get("sharpe_eta", 0.01)),
        "reward_clip": float(opts.get("reward_clip", 10.0)),
        "initial_equity": float(opts.get("initial_equity", 100_000.0)),
        "episode_length": opts.get("episode_length", DEFAULT_EPISODE_LENGTH),
        "max_drawdown": max_drawdown,
        "costs": costs_config(costs if costs is not None else FlatCosts()),
    }


def simulator_kwargs(config: Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
    """``TradingSimulator`` keyword arguments from an :func:`env_config` dict."""
    kwargs = {k: v for k, v in config.items() if k not in ("costs", "observation")}
    kwargs["costs"] = costs_from_config(config["costs"])
    kwargs["observation"] = ObservationConfig.from_dict(config["observation"])
    kwargs.update(overrides)
    return kwargs


@dataclass(frozen=True)
class EnvFactory:
    """A picklable env constructor (SubprocVecEnv ships it to its workers).

    Attributes:
        bars: Bars of the whole history.
        kwargs: ``TradingSimulator`` keyword arguments.
        monitor: Wrap in SB3's ``Monitor`` (episode length and return in ``info``).
    """

    bars: pd.DataFrame
    kwargs: dict[str, Any]
    monitor: bool = True

    def __call__(self) -> gym.Env:
        env = TradingSimulator(self.bars, **self.kwargs)
        return Monitor(env) if self.monitor else env


def make_vec_env(factory: EnvFactory, *, n_envs: int, vec_env: str) -> VecEnv:
    """``n_envs`` copies of the env in a DummyVecEnv, a SubprocVecEnv or one batched simulator.

    Raises:
        ValueError: On an unknown ``vec_env``.
    """
    if vec_env not in VEC_ENVS:
        raise ValueError(f"vec_env must be one of {VEC_ENVS}, got {vec_env!r}")
    if vec_env == "batched":
        venv = VecTradingSimulator(factory.bars, n_envs=n_envs, **factory.kwargs)
        return VecMonitor(venv) if factory.monitor else venv
    fns = [factory] * n_envs
    return SubprocVecEnv(fns) if vec_env == "subproc" else DummyVecEnv(fns)
