"""Portfolio policies: SB3 policies over :class:`PortfolioSimulator`, replayed by the engine.

A portfolio policy is stored exactly like a single-asset one (safetensors weights plus signed
canonical JSON, ``rl.artifact``; never a pickle). Its ``env_config`` holds the fields the
single-asset schema knows (``action_space`` is ``"continuous"``, ``costs`` as
``_envs.costs_config`` writes it);
what only a portfolio has (the universe, the action mapping, the leverage cap, the rebalance
rule) travels signed in ``metrics["portfolio_env"]`` and is checked on load by
:func:`portfolio_spec`. A policy without it is not a portfolio policy.

:func:`replay_portfolio` walks the deterministic policy over held-out bars in a
:class:`PortfolioSimulator` (features warmed up on the whole history), records its target
weights and books them with :func:`run_portfolio_backtest`: the same policy and bars give the
same equity, and the simulator's equity agrees with the engine's (``env_gap``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from quant_pipelines.backtest.costs import CostModel, FlatCosts
from quant_pipelines.backtest.portfolio import PortfolioResult, run_portfolio_backtest
from quant_pipelines.rl._envs import costs_config, costs_from_config
from quant_pipelines.rl._jsontypes import PolicyFormatError
from quant_pipelines.rl._replay import torch_threads
from quant_pipelines.rl.policy import TrainedPolicy
from quant_pipelines.simulator import ObservationConfig, PortfolioSimulator, build_features
from quant_pipelines.simulator._portfolio_obs import ACTION_MODES
from quant_pipelines.simulator.portfolio_env import PORTFOLIO_REBALANCE

#: Key of the portfolio's settings in a policy's (signed) ``metrics``.
PORTFOLIO_ENV = "portfolio_env"
DEFAULT_EPISODE_LENGTH = 256


@dataclass(frozen=True)
class PortfolioSpec:
    """What only a portfolio policy has (signed with it).

    Attributes:
        symbols: The universe, in the order of the action and observation entries.
        action_mode: ``"softmax"`` (long-only) or ``"clip"`` (long-short).
        action_scale: Softmax inverse temperature.
        max_gross_leverage: Gross exposure cap.
        rebalance: ``"daily"`` or ``"on_change"``.
    """

    symbols: tuple[str, ...]
    action_mode: str = "softmax"
    action_scale: float = 5.0
    max_gross_leverage: float = 1.0
    rebalance: str = "daily"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON."""
        return {**dataclasses.asdict(self), "symbols": list(self.symbols)}


def portfolio_spec(policy: TrainedPolicy) -> PortfolioSpec:
    """The signed portfolio settings of a (verified) policy.

    Raises:
        PolicyFormatError: If the policy is not a portfolio policy or its settings are invalid.
    """
    doc = (policy.metrics or {}).get(PORTFOLIO_ENV)
    if not isinstance(doc, dict):
        raise PolicyFormatError(
            f"policy {policy.policy_id!r} is not a portfolio policy (no signed {PORTFOLIO_ENV})"
        )
    symbols = doc.get("symbols")
    ok = (
        isinstance(symbols, list)
        and len(symbols) >= 2
        and all(isinstance(s, str) and s for s in symbols)
        and len(set(symbols)) == len(symbols)
        and doc.get("action_mode") in ACTION_MODES
        and doc.get("rebalance") in PORTFOLIO_REBALANCE
        and all(
            isinstance(doc.get(k), int | float) and not isinstance(doc.get(k), bool)
            for k in ("action_scale", "max_gross_leverage")
        )
        and set(doc) == {f.name for f in dataclasses.fields(PortfolioSpec)}
    )
    if not ok:
        raise PolicyFormatError(f"{PORTFOLIO_ENV} of policy {policy.policy_id!r} is invalid: {doc}")
    return PortfolioSpec(
        tuple(symbols),
        doc["action_mode"],
        float(doc["action_scale"]),
        float(doc["max_gross_leverage"]),
        doc["rebalance"],
    )


def decode_costs(doc: Mapping[str, Any]) -> CostModel:
    """The cost model of a stored ``env_config["costs"]`` (``_envs.costs_config`` fields).

    Raises:
        PolicyFormatError: On an unknown model or fields.
    """
    try:
        return costs_from_config(doc)
    except (TypeError, ValueError) as exc:
        raise PolicyFormatError(f"env_config.costs: {exc}") from exc


def portfolio_env_config(
    *,
    costs: CostModel | None,
    max_drawdown: float | None,
    observation: ObservationConfig | None = None,
    drawdown_penalty: float = 0.0,
    reward_clip: float = 10.0,
    initial_equity: float = 100_000.0,
    episode_length: int | None = DEFAULT_EPISODE_LENGTH,
) -> dict[str, Any]:
    """The JSON ``env_config`` of a portfolio policy (fields of the single-asset schema)."""
    return {
        "action_space": "continuous",
        "observation": (observation or ObservationConfig()).to_dict(),
        "reward": "log",
        "drawdown_penalty": float(drawdown_penalty),
        "reward_clip": float(reward_clip),
        "initial_equity": float(initial_equity),
        "episode_length": episode_length,
        "max_drawdown": max_drawdown,
        "costs": costs_config(costs if costs is not None else FlatCosts()),
    }


def env_kwargs(config: Mapping[str, Any], spec: PortfolioSpec, **overrides: Any) -> dict[str, Any]:
    """``PortfolioSimulator`` keyword arguments from an env config and a portfolio spec."""
    kwargs: dict[str, Any] = {
        "costs": decode_costs(config["costs"]),
        "observation": ObservationConfig.from_dict(config["observation"]),
        "drawdown_penalty": config["drawdown_penalty"],
        "reward_clip": config["reward_clip"],
        "initial_equity": config["initial_equity"],
        "episode_length": config["episode_length"],
        "max_drawdown": config["max_drawdown"],
        "action_mode": spec.action_mode,
        "action_scale": spec.action_scale,
        "max_gross_leverage": spec.max_gross_leverage,
        "rebalance": spec.rebalance,
    }
    kwargs.update(overrides)
    return kwargs


def universe_bars(
    bars: Mapping[str, pd.DataFrame], symbols: tuple[str, ...]
) -> dict[str, pd.DataFrame]:
    """The bars of ``symbols``, in their order.

    Raises:
        ValueError: Naming the first symbol of the policy without bars.
    """
    missing = [s for s in symbols if s not in bars]
    if missing:
        raise ValueError(f"the policy trades {list(symbols)}; no bars for {missing[0]!r}")
    return {s: bars[s] for s in symbols}


@dataclass(frozen=True)
class PortfolioReplay:
    """A portfolio policy replayed through the portfolio engine.

    Attributes:
        result: The engine's backtest of the policy's weights on the held-out bars.
        weights: The target weights the policy decided at each held-out close.
        env_equity: The simulator's equity over the bars it stepped.
        env_gap: Largest ``|simulator - engine|`` equity difference over those bars.
        terminated: Whether the drawdown limit (or ruin) ended the walk early; the weights
            are 0 (flat) from there on.
    """

    result: PortfolioResult
    weights: pd.DataFrame
    env_equity: pd.Series
    env_gap: float
    terminated: bool


def replay_portfolio(
    policy: TrainedPolicy,
    bars: Mapping[str, pd.DataFrame],
    *,
    start: str | pd.Timestamp | None = None,
    enforce_drawdown: bool = True,
    periods_per_year: float | None = None,
    asset_class: str | None = None,
) -> PortfolioReplay:
    """Replay a portfolio policy deterministically and book it with the portfolio engine.

    Args:
        policy: A portfolio policy (:func:`portfolio_spec` must accept it).
        bars: Bars by symbol; bars before ``start`` only warm the features up.
        start: First held-out timestamp (all bars when None).
        enforce_drawdown: Apply the policy's drawdown limit: after a breach the weights are 0.
        periods_per_year: Annualisation; ``asset_class`` picks it when None.
        asset_class: "equity", "crypto", "fx" ...

    Returns:
        The :class:`PortfolioReplay`.

    Raises:
        PolicyFormatError: If the policy is not a portfolio policy.
        ValueError: On missing symbols or fewer than 2 held-out bars.
    """
    spec = portfolio_spec(policy)
    full = universe_bars(bars, spec.symbols)
    cut = None if start is None else pd.Timestamp(start)
    held = {s: (b if cut is None else b[b.index >= cut]) for s, b in full.items()}
    cfg = ObservationConfig.from_dict(policy.env_config["observation"])
    limit = policy.env_config.get("max_drawdown") if enforce_drawdown else None
    env = PortfolioSimulator(
        held,
        **env_kwargs(
            policy.env_config,
            spec,
            features={s: build_features(b, cfg) for s, b in full.items()},
            max_drawdown=limit,
            episode_length=None,
        ),
    )
    rows = np.zeros((len(env.index), len(spec.symbols)))
    with torch_threads(policy.guardrails.get("torch_threads", 1)):
        obs, info = env.reset(seed=policy.seed)
        equity = [info["equity"]]
        done = terminated = False
        while not done:
            t = env.bar
            obs, _, terminated, truncated, info = env.step(policy.predict(obs))
            rows[t] = info["targets"]
            equity.append(info["equity"])
            done = terminated or truncated
    weights = pd.DataFrame(rows, index=env.index, columns=list(spec.symbols))
    result = run_portfolio_backtest(
        held,
        weights,
        costs=env.cost_models[0],
        initial_equity=env.initial_equity,
        max_gross_leverage=spec.max_gross_leverage,
        rebalance=spec.rebalance,
        periods_per_year=periods_per_year,
        asset_class=asset_class,
    )
    env_equity = pd.Series(equity, index=env.index[: len(equity)], name="equity")
    gap = float(np.abs(result.equity.to_numpy()[: len(equity)] - env_equity.to_numpy()).max())
    return PortfolioReplay(result, weights, env_equity, gap, bool(terminated))
