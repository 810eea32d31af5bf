"""Samplers, pruners and search-space conversion for Optuna and Hyperopt (all seeded)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from quant_pipelines.backtest import CategoricalParam, FloatParam, IntParam, SearchSpace

#: Optuna samplers by name. ``cmaes`` needs the ``cmaes`` package, ``gp`` torch and scipy,
#: ``qmc`` scipy.
SAMPLERS: tuple[str, ...] = ("tpe", "random", "cmaes", "gp", "qmc", "nsga2")
#: Hyperopt algorithms by name (``engine="hyperopt"``).
HYPEROPT_ALGOS: tuple[str, ...] = ("tpe", "anneal", "random")
PRUNERS: tuple[str, ...] = ("median", "percentile", "none")


def make_sampler(
    name: str, *, seed: int, multi_objective: bool = False
) -> optuna.samplers.BaseSampler:
    """Builds a seeded Optuna sampler.

    Args:
        name: One of :data:`SAMPLERS`.
        seed: Random seed.
        multi_objective: The study has several objectives (``cmaes`` then refuses).

    Returns:
        The sampler.

    Raises:
        ValueError: For an unknown name or cmaes on a multi-objective study.
    """
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; known: {list(SAMPLERS)}")
    s = optuna.samplers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return s.TPESampler(seed=seed)
        if name == "random":
            return s.RandomSampler(seed=seed)
        if name == "cmaes":
            if multi_objective:
                raise ValueError("the cmaes sampler is single-objective; use nsga2, tpe or gp")
            return s.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        if name == "gp":
            return s.GPSampler(seed=seed, warn_independent_sampling=False)
        if name == "qmc":
            return s.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False)
        return s.NSGAIISampler(seed=seed)


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    """A pruner over walk-forward steps: ``median``, ``percentile`` (25th) or ``none``."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    if name == "percentile":
        return optuna.pruners.PercentilePruner(25.0, n_startup_trials=5)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {name!r}; known: {list(PRUNERS)}")


def distributions(space: SearchSpace) -> dict[str, BaseDistribution]:
    """Optuna distributions of a search space (one to one, see ``backtest.space``)."""
    out: dict[str, BaseDistribution] = {}
    for p in space.params:
        if isinstance(p, IntParam):
            out[p.name] = IntDistribution(p.low, p.high, step=p.step, log=p.log)
        elif isinstance(p, FloatParam):
            out[p.name] = FloatDistribution(p.low, p.high, step=p.step, log=p.log)
        else:
            out[p.name] = CategoricalDistribution(p.choices)
    return out


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """Suggests every parameter of ``space`` on ``trial``."""
    out: dict[str, Any] = {}
    for p in space.params:
        if isinstance(p, IntParam):
            out[p.name] = trial.suggest_int(p.name, p.low, p.high, step=p.step, log=p.log)
        elif isinstance(p, FloatParam):
            out[p.name] = trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)
        else:
            out[p.name] = trial.suggest_categorical(p.name, p.choices)
    return out


def hyperopt_space(space: SearchSpace) -> dict[str, Any]:
    """The search space as a Hyperopt space (ints on their grid, floats (log-)uniform)."""
    from hyperopt import hp

    out: dict[str, Any] = {}
    for p in space.params:
        if isinstance(p, IntParam):
            if p.log:
                out[p.name] = hp.qloguniform(p.name, math.log(p.low), math.log(p.high), 1)
            else:
                n = (p.high - p.low) // p.step
                out[p.name] = p.low + p.step * hp.uniformint(p.name, 0, n)
        elif isinstance(p, FloatParam):
            if p.log:
                out[p.name] = hp.loguniform(p.name, math.log(p.low), math.log(p.high))
            elif p.step:
                out[p.name] = hp.quniform(p.name, p.low, p.high, p.step)
            else:
                out[p.name] = hp.uniform(p.name, p.low, p.high)
        elif isinstance(p, CategoricalParam):
            out[p.name] = hp.choice(p.name, list(p.choices))
    return out


def coerce(space: SearchSpace, params: dict[str, Any]) -> dict[str, Any]:
    """Casts Hyperopt's floats back to the space's types (ints stay on range)."""
    out = dict(params)
    for p in space.params:
        if isinstance(p, IntParam):
            out[p.name] = int(min(p.high, max(p.low, round(float(out[p.name])))))
        elif isinstance(p, FloatParam):
            out[p.name] = float(min(p.high, max(p.low, float(out[p.name]))))
    return out
