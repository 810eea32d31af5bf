"""``PortfolioSimulator``: a Gymnasium env over a universe, booked by the portfolio engine's step.

The universe (a mapping symbol -> bars) is laid on the union of its sessions as
:func:`~quant_pipelines.backtest.portfolio.run_portfolio_backtest` lays it. The step at bar t
(observation built at bar t's close) takes target weights decided at that close; they fill at
each symbol's next open and the book is marked at bar t+1's close by the engine's own compiled
per-bar pieces (``simulator._portfolio_step``). For any actions, ``info["equity"]`` after the
step from bar t equals the engine's equity at bar t+1 on the weights ``info["targets"]``, with
the same costs and ``rebalance`` (the tests hold them equal to 1e-9). See ``docs/rl.md``.

**Actions** are a ``Box(-1, 1, (n_symbols + 1,))``: one entry per symbol, then cash.
``action_mode="softmax"`` (the default) maps them to long-only weights ``max_gross_leverage *
softmax(action_scale * action)[:n]`` (the cash entry takes the rest); ``"clip"`` maps them to
long-short weights ``max_gross_leverage * clip(action[:n], -1, 1)`` scaled down to gross
``max_gross_leverage`` when above it (cash is the residual; its entry is not read).

**Observations** stack the per-symbol causal features (:mod:`~quant_pipelines.simulator.
features`, ``window`` rows each) and end with the book's held weights and cash weight.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces

from quant_pipelines.backtest.costs import CostModel, FlatCosts
from quant_pipelines.backtest.portfolio._inputs import align, cost_models
from quant_pipelines.backtest.portfolio._kernel import ON_CHANGE, SCHEDULE
from quant_pipelines.simulator._layout import episode_bounds, resolve_range
from quant_pipelines.simulator._portfolio_obs import ACTION_MODES, action_targets, stacked_features
from quant_pipelines.simulator._portfolio_step import portfolio_step
from quant_pipelines.simulator.features import ObservationConfig

PORTFOLIO_REBALANCE: dict[str, int] = {"daily": SCHEDULE, "on_change": ON_CHANGE}
"""``daily``: every symbol trades back to its target at each step (the engine's ``"daily"``);
``on_change``: a symbol trades when its target changes (the engine's ``"on_change"``)."""


class PortfolioSimulator(gym.Env):
    """Multi-asset trading env with one cash account; observations are precomputed.

    Args:
        bars: Bars by symbol (at least 2 symbols; the whole history: indicators warm up on it).
        costs: One cost model, or one per symbol (``FlatCosts()`` by default).
        action_mode: ``"softmax"`` (long-only, the default) or ``"clip"`` (long-short).
        action_scale: Softmax inverse temperature (``softmax`` only).
        max_gross_leverage: Gross exposure cap of the target weights.
        rebalance: ``"daily"`` (the default) or ``"on_change"`` (see :data:`PORTFOLIO_REBALANCE`).
        observation: Observation settings (:class:`ObservationConfig`).
        features: Precomputed feature frames by symbol (e.g. on a longer history than ``bars``).
        drawdown_penalty: Subtract ``drawdown_penalty * max(0, dd_t - dd_{t-1})`` each step.
        reward_clip: Rewards (log equity changes) are clipped to ``[-reward_clip, reward_clip]``.
        max_drawdown: Terminate once drawdown from the episode's peak reaches it; None: no limit.
        initial_equity: Equity at the start of every episode.
        start: First bar of the episode range (position or timestamp on the union of sessions).
        end: End of the episode range, exclusive.
        random_start: Start each episode at a seeded random bar of the range.
        episode_length: Maximum steps per episode; to the range end if None.

    Raises:
        ValueError: With fewer than 2 symbols, bad bars or options.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(
        self,
        bars: Mapping[str, pd.DataFrame],
        *,
        costs: CostModel | Mapping[str, CostModel] | None = None,
        action_mode: str = "softmax",
        action_scale: float = 5.0,
        max_gross_leverage: float = 1.0,
        rebalance: str = "daily",
        observation: ObservationConfig | None = None,
        features: Mapping[str, pd.DataFrame] | None = None,
        drawdown_penalty: float = 0.0,
        reward_clip: float = 10.0,
        max_drawdown: float | None = None,
        initial_equity: float = 100_000.0,
        start: int | str | pd.Timestamp | None = None,
        end: int | str | pd.Timestamp | None = None,
        random_start: bool = False,
        episode_length: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(bars, Mapping):
            raise TypeError(
                f"bars must be a mapping symbol -> DataFrame, got {type(bars).__name__}"
            )
        if len(bars) < 2:
            raise ValueError(
                f"PortfolioSimulator needs a universe of at least 2 symbols; got {len(bars)}: "
                f"{list(bars)} (trade one symbol with TradingSimulator)"
            )
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {action_mode!r}")
        if rebalance not in PORTFOLIO_REBALANCE:
            raise ValueError(
                f"rebalance must be one of {list(PORTFOLIO_REBALANCE)}, got {rebalance!r}"
            )
        positive = {
            "action_scale": action_scale,
            "max_gross_leverage": max_gross_leverage,
            "initial_equity": initial_equity,
            "reward_clip": reward_clip,
        }
        for name, value in positive.items():
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not (math.isfinite(drawdown_penalty) and drawdown_penalty >= 0):
            raise ValueError(f"drawdown_penalty must be >= 0, got {drawdown_penalty!r}")
        if max_drawdown is not None and not 0.0 < max_drawdown <= 1.0:
            raise ValueError(f"max_drawdown must be in (0, 1], got {max_drawdown!r}")
        if episode_length is not None and int(episode_length) < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length!r}")
        self.symbols = tuple(str(s) for s in bars)
        bars = {str(k): v for k, v in bars.items()}
        self.cost_models = cost_models(costs if costs is not None else FlatCosts(), self.symbols)
        uni = align(bars, self.symbols, self.cost_models)
        self.index = uni.index
        self._uni = uni
        self.action_mode = action_mode
        self.action_scale = float(action_scale)
        self.max_gross_leverage = float(max_gross_leverage)
        self.rebalance = rebalance
        self._mode = PORTFOLIO_REBALANCE[rebalance]
        self.observation_config = observation or ObservationConfig()
        self.drawdown_penalty = float(drawdown_penalty)
        self.reward_clip = float(reward_clip)
        self.max_drawdown = None if max_drawdown is None else float(max_drawdown)
        self.initial_equity = float(initial_equity)
        self.start, self.end = resolve_range(self.index, start, end)
        self.random_start = bool(random_start)
        self.episode_length = None if episode_length is None else int(episode_length)
        self._clip = float(self.observation_config.clip)
        self._features = stacked_features(
            bars, self.symbols, self.index, self.observation_config, features
        )
        self._marks = pd.DataFrame(uni.closes).ffill().fillna(0.0).to_numpy()
        width = len(self.symbols)
        dim = self._features.shape[1] + width + 1
        self.observation_space = spaces.Box(-self._clip, self._clip, shape=(dim,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(width + 1,), dtype=np.float32)
        self._up = 1.0 + uni.slippage
        self._down = 1.0 - uni.slippage
        self._ev_i = np.zeros((2, width), dtype=np.int64)
        self._ev_f = np.zeros((8, width))
        self._new_book(self.start)
        self._done = True

    # -- helpers ---------------------------------------------------------------------------

    def target_of(self, action: Any) -> np.ndarray:
        """The target weights an action stands for (what the engine gets as a weights row).

        Raises:
            ValueError: On an action of the wrong shape or holding a NaN or an infinity.
        """
        return action_targets(
            action,
            self.symbols,
            mode=self.action_mode,
            scale=self.action_scale,
            max_gross_leverage=self.max_gross_leverage,
        )

    @property
    def bar(self) -> int:
        """Position of the current bar (the close the next action is decided at)."""
        return self._t

    def held_weights(self) -> np.ndarray:
        """Held weights at the current close per symbol, then the cash weight."""
        eq = self._equity
        if eq <= 0.0:
            return np.zeros(len(self.symbols) + 1)
        return np.append(self._units * self._last, self._cash) / eq

    def _new_book(self, first: int) -> None:
        width = len(self.symbols)
        self._units = np.zeros(width)
        self._last = self._marks[first].copy()
        self._in_force = np.zeros(width)
        self._tgt = np.zeros(width)
        self._pending = np.zeros(width, dtype=np.bool_)
        self._sleeve = np.full(width, self.initial_equity)
        self._started = np.zeros(width, dtype=np.bool_)
        self._bench_units = np.zeros(width)
        self._cash = self._equity = self._peak = self.initial_equity
        self._dd = 0.0
        self._ruined = False

    def _observation(self) -> np.ndarray:
        obs = np.empty(self.observation_space.shape, dtype=np.float32)
        k = self._features.shape[1]
        obs[:k] = self._features[self._t]
        obs[k:] = np.clip(self.held_weights(), -self._clip, self._clip)
        return obs

    def _info(self, targets: np.ndarray | None = None) -> dict[str, Any]:
        return {
            "equity": self._equity,
            "cash": self._cash,
            "weights": self.held_weights(),
            "targets": targets,
            "drawdown": self._dd,
            "bar": self._t,
            "ruined": self._ruined,
        }

    # -- gymnasium API ---------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode flat (at ``options["start"]`` if given, else per ``random_start``)."""
        super().reset(seed=seed)
        forced = None if options is None else options.get("start")
        self._t, self._last_bar = episode_bounds(
            self.start,
            self.end,
            random_start=self.random_start,
            episode_length=self.episode_length,
            rng=self.np_random,
            forced=forced,
        )
        self._new_book(self._t)
        self._done = False
        return self._observation(), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Order the action's weights at this close, fill at the next opens, mark, observe."""
        if self._done:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        targets = self.target_of(action)
        uni = self._uni
        e0 = self._equity
        self._cash, e1, ruined = portfolio_step(
            self._t, targets, self._mode, e0, self._cash, uni.opens, uni.closes, self._units,
            self._last, self._in_force, self._tgt, self._pending, self._sleeve, uni.commission,
            self._up, self._down, uni.impact, uni.cap, self._ev_i, self._ev_f, self._started,
            self._bench_units, self.initial_equity / len(self.symbols),
        )  # fmt: skip
        self._t += 1
        if ruined:
            self._units[:] = 0.0
            self._cash = 0.0
            self._ruined = True
        self._equity = e1
        self._peak = max(self._peak, e1)
        dd_prev, self._dd = self._dd, 1.0 - e1 / self._peak
        clip = self.reward_clip
        reward = math.log(e1 / e0) if e1 > 0.0 else -clip
        if self.drawdown_penalty and self._dd > dd_prev:
            reward -= self.drawdown_penalty * (self._dd - dd_prev)
        reward = min(max(reward, -clip), clip)
        limit = self.max_drawdown
        terminated = ruined or (limit is not None and self._dd >= limit)
        truncated = not terminated and self._t >= self._last_bar
        self._done = terminated or truncated
        return self._observation(), reward, terminated, truncated, self._info(targets)
