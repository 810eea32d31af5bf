"""``TradingSimulator``: a Gymnasium env over bars that books trades with the backtester's model.

The step at bar t (observation built at bar t's close) takes the target exposure decided at that
close; the :class:`~quant_pipelines.backtest.fills.Book` fills it at bar t+1's open and marks it
at bar t+1's close. That is ``positions[t]`` of :func:`quant_pipelines.backtest.run_backtest`, so
for any action sequence ``info["equity"]`` after step k equals the backtest's equity at bar
``start + k + 1``. See ``docs/simulator.md``.

Either cost model applies (:mod:`quant_pipelines.backtest.costs`). With
:class:`~quant_pipelines.backtest.costs.VolumeShareCosts` the per-bar impact and participation
cap are computed once, on all the bars the env is given (as ``run_backtest`` would on them: the
trailing statistics are causal, so bars before the episode range only warm them up), and each
fill takes the terms of its decision bar; an order the cap cuts keeps filling at the next opens.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces

from quant_pipelines.backtest import Book
from quant_pipelines.backtest.costs import CostModel, FlatCosts, cost_model
from quant_pipelines.backtest.engine import bar_arrays, cost_terms
from quant_pipelines.signals import realized_volatility
from quant_pipelines.simulator._layout import episode_bounds, resolve_range, window_matrix
from quant_pipelines.simulator.features import ObservationConfig, build_features

DISCRETE_TARGETS: tuple[float, float, float] = (-1.0, 0.0, 1.0)
"""Target exposure of discrete actions 0 (short), 1 (flat) and 2 (long)."""

REWARDS: tuple[str, ...] = ("log", "sharpe")
"""Reward kinds: log equity change net of costs, or Moody-Saffell differential Sharpe."""

ACTION_SPACES: tuple[str, ...] = ("discrete", "continuous")

_DISCRETE_LOOKUP: dict[int, float] = dict(enumerate(DISCRETE_TARGETS))


class TradingSimulator(gym.Env):
    """One-instrument trading env; observations are precomputed, so a step is O(1).

    Args:
        bars: Bars in the project's schema (the whole history: indicators warm up on it).
        costs: The backtester's cost model: ``FlatCosts`` (``Costs``; ``Costs()`` when None) or
            ``VolumeShareCosts`` (reads the bars' ``volume``).
        action_space: ``"discrete"`` (0, 1, 2 = exposure -1, 0, +1) or ``"continuous"``
            (a target exposure in ``[-1, 1]``, shape ``(1,)``).
        observation: Observation settings (:class:`ObservationConfig`).
        reward: ``"log"`` (log equity change, the default) or ``"sharpe"`` (differential Sharpe).
        drawdown_penalty: Subtract ``drawdown_penalty * max(0, dd_t - dd_{t-1})`` each step.
        sharpe_eta: Adaptation rate of the differential Sharpe ratio's moving moments.
        reward_clip: Rewards are clipped to ``[-reward_clip, reward_clip]``.
        max_drawdown: Terminate the episode once drawdown from the episode's peak equity
            reaches this fraction (the env guardrail); None for no limit.
        initial_equity: Equity at the start of every episode.
        start: First bar of the episode range (position or timestamp); the first bar if None.
        end: End of the episode range, exclusive (position or timestamp); all bars if None.
        random_start: Start each episode at a seeded random bar of the range (``reset(seed)``
            seeds it); otherwise at ``start``.
        episode_length: Maximum steps per episode (truncated after it); to the range end if None.

    Raises:
        TypeError: If ``costs`` is not a cost model.
        ValueError: On a bad setting or bad bars (``VolumeShareCosts`` also need a finite,
            non-negative ``volume`` column; the error names the bar).
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(
        self,
        bars: pd.DataFrame,
        *,
        costs: CostModel | None = None,
        action_space: str = "discrete",
        observation: ObservationConfig | None = None,
        reward: str = "log",
        drawdown_penalty: float = 0.0,
        sharpe_eta: float = 0.01,
        reward_clip: float = 10.0,
        max_drawdown: float | None = None,
        initial_equity: float = 100_000.0,
        start: int | str | pd.Timestamp | None = None,
        end: int | str | pd.Timestamp | None = None,
        random_start: bool = False,
        episode_length: int | None = None,
    ) -> None:
        super().__init__()
        if action_space not in ACTION_SPACES:
            raise ValueError(f"action_space must be one of {ACTION_SPACES}, got {action_space!r}")
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {reward!r}")
        if max_drawdown is not None and not 0.0 < max_drawdown <= 1.0:
            raise ValueError(f"max_drawdown must be in (0, 1], got {max_drawdown!r}")
        if not (drawdown_penalty >= 0.0 and 0.0 < sharpe_eta < 1.0 and reward_clip > 0.0):
            raise ValueError("need drawdown_penalty >= 0, 0 < sharpe_eta < 1 and reward_clip > 0")
        if not (math.isfinite(initial_equity) and initial_equity > 0):
            raise ValueError(f"initial_equity must be positive, got {initial_equity!r}")
        self.costs = cost_model(costs if costs is not None else FlatCosts())
        opens, closes = bar_arrays(bars)
        terms = cost_terms(self.costs, bars, closes)  # None for flat costs
        self.bars_index = bars.index
        self.action_kind = action_space
        self.observation_config = observation or ObservationConfig()
        self.reward_kind = reward
        self._log_reward = reward == "log"
        self._discrete = action_space == "discrete"
        self.drawdown_penalty = float(drawdown_penalty)
        self.sharpe_eta = float(sharpe_eta)
        self.reward_clip = float(reward_clip)
        self.max_drawdown = None if max_drawdown is None else float(max_drawdown)
        self.initial_equity = float(initial_equity)
        self.start, self.end = resolve_range(bars.index, start, end)
        self.random_start = bool(random_start)
        if episode_length is not None and int(episode_length) < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length!r}")
        self.episode_length = None if episode_length is None else int(episode_length)

        cfg = self.observation_config
        self.features = build_features(bars, cfg)
        self._obs = window_matrix(self.features.to_numpy(), cfg.window, extra=2)
        rv = realized_volatility(bars["close"], cfg.vol_window).to_numpy()
        fallback = float(np.nanmedian(rv)) if np.isfinite(rv).any() else 0.01
        rv = np.where(np.isfinite(rv) & (rv > 0), rv, fallback if fallback > 0 else 0.01)
        self._inv_vol = (1.0 / rv).tolist()
        self._open = opens.tolist()
        self._close = closes.tolist()
        self._flat = terms is None
        n = len(closes)
        self._impact = [0.0] * n if terms is None else terms.impact.tolist()
        self._cap = [math.inf] * n if terms is None else terms.cap.tolist()
        self._clip = float(cfg.clip)

        self.observation_space = spaces.Box(
            -self._clip, self._clip, shape=(self._obs.shape[1],), dtype=np.float32
        )
        if action_space == "discrete":
            self.action_space = spaces.Discrete(3)
        else:
            self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self._book = Book(initial_equity=self.initial_equity, costs=self.costs)
        self._t = self._last = self.start
        self._peak = self._equity = self._entry = self.initial_equity
        self._dd = 0.0
        self._sharpe_a = self._sharpe_b = 0.0
        self._done = True

    # -- helpers ---------------------------------------------------------------------------

    def target_of(self, action: Any) -> float:
        """The target exposure an action stands for (what ``run_backtest`` gets as position)."""
        if self.action_kind == "discrete":
            a = int(action)
            if not 0 <= a <= 2:
                raise ValueError(f"discrete action must be 0, 1 or 2, got {action!r}")
            return DISCRETE_TARGETS[a]
        value = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
        if math.isnan(value):
            raise ValueError("continuous action is NaN")
        return min(max(value, -1.0), 1.0)

    @property
    def bar(self) -> int:
        """Position of the current bar (the close the next action is decided at)."""
        return self._t

    def _observation(self, t: int, position: float, upnl: float) -> np.ndarray:
        obs = self._obs[t].copy()
        c = self._clip
        obs[-2] = position
        obs[-1] = min(max(upnl, -c), c)
        return obs

    def _info(self) -> dict[str, Any]:
        return {
            "equity": self._equity,
            "position": self._book.target,
            "drawdown": self._dd,
            "bar": self._t,
        }

    # -- gymnasium API ---------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode (at ``options["start"]`` if given, else per ``random_start``)."""
        super().reset(seed=seed)
        forced = None if options is None else options.get("start")
        self._t, self._last = episode_bounds(
            self.start,
            self.end,
            random_start=self.random_start,
            episode_length=self.episode_length,
            rng=self.np_random,
            forced=forced,
        )
        self._book = Book(initial_equity=self.initial_equity, costs=self.costs)
        self._peak = self._equity = self._entry = self.initial_equity
        self._dd = 0.0
        self._sharpe_a = self._sharpe_b = 0.0
        self._done = False
        return self._observation(self._t, 0.0, 0.0), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Trade to the action's target at the next open, mark at its close, and observe."""
        if self._done:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        try:  # fast path: an int-like discrete action
            target = _DISCRETE_LOOKUP[action] if self._discrete else self.target_of(action)
        except (KeyError, TypeError):
            target = self.target_of(action)  # 0-d arrays, or raises a clear ValueError
        t = self._t + 1
        book = self._book
        if self._flat:
            fill = book.open(target, self._open[t])
        else:  # with the decision bar's (t - 1) impact and participation cap
            d = t - 1
            fill = book.open(target, self._open[t], impact=self._impact[d], cap=self._cap[d])
        e1 = book.mark(self._close[t])
        if fill is not None:
            self._entry = fill.equity
        e0 = self._equity
        self._equity = e1
        self._t = t
        if e1 > self._peak:
            self._peak = e1
        dd_prev = self._dd
        dd = self._dd = 1.0 - e1 / self._peak
        clip = self.reward_clip
        if self._log_reward:
            reward = math.log(e1 / e0) if e1 > 0.0 else -clip
        else:
            reward = self._differential_sharpe(e1 / e0 - 1.0)
        if self.drawdown_penalty and dd > dd_prev:
            reward -= self.drawdown_penalty * (dd - dd_prev)
        reward = min(max(reward, -clip), clip)
        limit = self.max_drawdown
        terminated = book.ruined or (limit is not None and dd >= limit)
        truncated = not terminated and t >= self._last
        self._done = terminated or truncated
        position = book.target
        obs = self._obs[t].copy()
        obs[-2] = position
        if position:
            c = self._clip
            upnl = (e1 / self._entry - 1.0) * self._inv_vol[t] if self._entry > 0 else 0.0
            obs[-1] = min(max(upnl, -c), c)
        info = {"equity": e1, "position": position, "drawdown": dd, "bar": t}
        return obs, reward, terminated, truncated, info

    def _differential_sharpe(self, r: float) -> float:
        # Moody & Saffell (1998): D_t = (B dA - A dB / 2) / (B - A^2)^(3/2), moments by EMA.
        a, b = self._sharpe_a, self._sharpe_b
        da, db = r - a, r * r - b
        var = b - a * a
        d = (b * da - 0.5 * a * db) / var**1.5 if var > 1e-12 else 0.0
        self._sharpe_a = a + self.sharpe_eta * da
        self._sharpe_b = b + self.sharpe_eta * db
        return d
