"""One env of a :class:`~quant_pipelines.simulator.VecTradingSimulator`, as SB3's VecEnv sees it.

``get_attr``, ``set_attr`` and ``env_method`` act on an :class:`EnvView`: it reads (and, for the
settings listed in :data:`SETTABLE`, writes) the batched arrays of one env, and names the same
attributes and methods a :class:`~quant_pipelines.simulator.TradingSimulator` has.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from quant_pipelines.simulator import _vec_kernel as k
from quant_pipelines.simulator.env import DISCRETE_TARGETS

if TYPE_CHECKING:
    import pandas as pd
    from gymnasium import spaces

    from quant_pipelines.backtest.costs import CostModel
    from quant_pipelines.simulator.features import ObservationConfig
    from quant_pipelines.simulator.vec_env import VecTradingSimulator

#: Per-env settings ``set_attr`` may change (validated as ``TradingSimulator`` validates them).
SETTABLE: tuple[str, ...] = (
    "random_start",
    "episode_length",
    "max_drawdown",
    "drawdown_penalty",
    "sharpe_eta",
    "reward_clip",
)


class EnvView:
    """Env ``index`` of a batched simulator: its settings, its state and its per-env methods.

    Args:
        vec: The batched simulator.
        index: The env's position in it.
    """

    __slots__ = ("index", "vec")

    def __init__(self, vec: VecTradingSimulator, index: int) -> None:
        self.vec = vec
        self.index = index

    # -- what the env was built with -------------------------------------------------------

    @property
    def symbol(self) -> str | None:
        """The symbol of the env's bars (the mapping key it was given under), if any."""
        return self.vec.symbols[self.index]

    @property
    def bars_index(self) -> pd.Index:
        """The timestamps of the env's bars."""
        return self.vec._indexes[self.vec._blocks[self.index]]

    @property
    def start(self) -> int:
        """First bar position of the episode range."""
        return self.vec._ranges[self.index][0]

    @property
    def end(self) -> int:
        """End (exclusive) of the episode range."""
        return self.vec._ranges[self.index][1]

    @property
    def costs(self) -> CostModel:
        """The cost model (``FlatCosts`` or ``VolumeShareCosts``)."""
        return self.vec._costs[self.index]

    @property
    def action_kind(self) -> str:
        """``"discrete"`` or ``"continuous"``."""
        return self.vec.action_kind

    @property
    def observation_config(self) -> ObservationConfig:
        """The observation settings."""
        return self.vec.observation_config

    @property
    def reward_kind(self) -> str:
        """``"log"`` or ``"sharpe"``."""
        return "log" if self.vec._params[self.index, k.LOG_REWARD] else "sharpe"

    @property
    def initial_equity(self) -> float:
        """Equity at the start of every episode."""
        return float(self.vec._params[self.index, k.INITIAL])

    @property
    def observation_space(self) -> spaces.Box:
        """The observation space (shared by every env)."""
        return self.vec.observation_space

    @property
    def action_space(self) -> spaces.Space:
        """The action space (shared by every env)."""
        return self.vec.action_space

    @property
    def render_mode(self) -> None:
        """No rendering (as ``TradingSimulator``)."""
        return None

    @property
    def np_random(self) -> np.random.Generator | None:
        """The env's random generator (random starts); None before its first reset."""
        return self.vec._rngs[self.index]

    # -- state -----------------------------------------------------------------------------

    @property
    def bar(self) -> int:
        """Position of the current bar (the close the next action is decided at)."""
        v = self.vec
        return int(v._cursor[self.index, k.BAR] - v._cursor[self.index, k.OFFSET])

    @property
    def equity(self) -> float:
        """Equity at the last mark."""
        return float(self.vec._state[self.index, k.EQUITY])

    @property
    def position(self) -> float:
        """The target exposure in force."""
        return float(self.vec._state[self.index, k.TARGET])

    @property
    def pending(self) -> bool:
        """Whether the order for the target in force is only partly filled (participation cap)."""
        return bool(self.vec._cursor[self.index, k.PENDING])

    @property
    def drawdown(self) -> float:
        """Drawdown from the episode's peak equity."""
        return float(self.vec._state[self.index, k.DRAWDOWN])

    # -- settings set_attr may change ------------------------------------------------------

    @property
    def random_start(self) -> bool:
        """Whether episodes start at a seeded random bar (read at the next reset)."""
        return self.vec._random_start[self.index]

    @random_start.setter
    def random_start(self, value: bool) -> None:
        if not isinstance(value, bool | np.bool_):
            raise ValueError(f"random_start must be a bool, got {value!r}")
        self.vec._random_start[self.index] = bool(value)

    @property
    def episode_length(self) -> int | None:
        """Most steps per episode (read at the next reset); None for the range end."""
        return self.vec._episode_length[self.index]

    @episode_length.setter
    def episode_length(self, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
            raise ValueError(f"episode_length must be >= 1, got {value!r}")
        self.vec._episode_length[self.index] = None if value is None else int(value)

    @property
    def max_drawdown(self) -> float | None:
        """The drawdown limit that terminates an episode; None for none."""
        limit = float(self.vec._params[self.index, k.MAX_DRAWDOWN])
        return None if math.isinf(limit) else limit

    @max_drawdown.setter
    def max_drawdown(self, value: float | None) -> None:
        if value is not None and not 0.0 < value <= 1.0:
            raise ValueError(f"max_drawdown must be in (0, 1], got {value!r}")
        self.vec._params[self.index, k.MAX_DRAWDOWN] = math.inf if value is None else float(value)

    @property
    def drawdown_penalty(self) -> float:
        """Penalty per unit of drawdown increase."""
        return float(self.vec._params[self.index, k.PENALTY])

    @drawdown_penalty.setter
    def drawdown_penalty(self, value: float) -> None:
        self._set(k.PENALTY, value, value >= 0.0, "drawdown_penalty must be >= 0")

    @property
    def sharpe_eta(self) -> float:
        """Adaptation rate of the differential Sharpe ratio."""
        return float(self.vec._params[self.index, k.ETA])

    @sharpe_eta.setter
    def sharpe_eta(self, value: float) -> None:
        self._set(k.ETA, value, 0.0 < value < 1.0, "sharpe_eta must be in (0, 1)")

    @property
    def reward_clip(self) -> float:
        """Rewards are clipped to ``[-reward_clip, reward_clip]``."""
        return float(self.vec._params[self.index, k.REWARD_CLIP])

    @reward_clip.setter
    def reward_clip(self, value: float) -> None:
        self._set(k.REWARD_CLIP, value, value > 0.0, "reward_clip must be > 0")

    def _set(self, column: int, value: float, ok: bool, message: str) -> None:
        if not ok:  # NaN fails every comparison
            raise ValueError(f"{message}, got {value!r}")
        self.vec._params[self.index, column] = float(value)

    # -- methods ---------------------------------------------------------------------------

    def target_of(self, action: Any) -> float:
        """The target exposure an action stands for (as ``TradingSimulator.target_of``)."""
        if self.vec.action_kind == "discrete":
            a = int(action)
            if not 0 <= a <= 2:
                raise ValueError(f"discrete action must be 0, 1 or 2, got {action!r}")
            return DISCRETE_TARGETS[a]
        value = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
        if math.isnan(value):
            raise ValueError("continuous action is NaN")
        return min(max(value, -1.0), 1.0)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new episode of this env only (as ``TradingSimulator.reset``)."""
        obs = self.vec._reset_envs([self.index], seeds=[seed], options=[options])
        return obs[0], self.vec.reset_infos[self.index]

    def render(self) -> None:
        """Nothing to render (as ``TradingSimulator``)."""
        return None
