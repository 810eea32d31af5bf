"""``VecTradingSimulator``: N trading episodes stepped at once, as an SB3 ``VecEnv``.

It is N :class:`~quant_pipelines.simulator.TradingSimulator` s in one object: each env has its
own bars (symbol), episode range, seed and settings, and one compiled loop
(:func:`~quant_pipelines.simulator._vec_kernel.step_kernel`) steps them all. For the same actions
it returns what a ``DummyVecEnv`` of the same ``TradingSimulator`` s returns, bit for bit:
observations, rewards (float32, as SB3 stores them), dones, the infos (``equity``,
``position``, ``drawdown``, ``bar``, ``TimeLimit.truncated``, ``terminal_observation``), and
the same auto-reset, seeding (``seed()`` then ``reset()``) and ``set_options`` semantics. See
``docs/rl.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn

from quant_pipelines.simulator import _vec_kernel as k
from quant_pipelines.simulator._layout import episode_bounds, resolve_range
from quant_pipelines.simulator._vec_layout import check_actions, frames_of, per_env, stack
from quant_pipelines.simulator._vec_view import SETTABLE, EnvView
from quant_pipelines.simulator.env import TradingSimulator


class VecTradingSimulator(VecEnv):
    """N one-instrument trading envs stepped together by one compiled loop.

    Args:
        bars: One bar frame, a sequence of frames, or a mapping ``symbol -> frame``; env ``i``
            trades frame ``i % len(frames)``.
        n_envs: Number of envs; the number of frames when None.
        start: Episode-range start of every env, or a list/array with one per env.
        end: Episode-range end (exclusive), one for all or one per env.
        **kwargs: The other :class:`TradingSimulator` arguments (``costs``, ``action_space``,
            ``observation``, ``reward``, ``drawdown_penalty``, ``sharpe_eta``, ``reward_clip``,
            ``max_drawdown``, ``initial_equity``, ``random_start``, ``episode_length``).

    Raises:
        ValueError: On ``n_envs < 1``, no frames, a per-env list of the wrong length, or any
            argument ``TradingSimulator`` refuses.
    """

    def __init__(
        self,
        bars: pd.DataFrame | Sequence[pd.DataFrame] | Mapping[str, pd.DataFrame],
        *,
        n_envs: int | None = None,
        start: Any = None,
        end: Any = None,
        **kwargs: Any,
    ) -> None:
        frames, symbols = frames_of(bars)
        n = len(frames) if n_envs is None else n_envs
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"n_envs must be a positive integer, got {n_envs!r}")
        templates = [TradingSimulator(f, **kwargs) for f in frames]  # features once per frame
        m = len(frames)
        envs = [templates[i % m] for i in range(n)]
        starts, ends = per_env(start, n, "start"), per_env(end, n, "end")
        ranges = [
            resolve_range(e.bars_index, s, x) for e, s, x in zip(envs, starts, ends, strict=True)
        ]
        self._setup(envs, ranges, [symbols[i % m] for i in range(n)])

    @classmethod
    def from_simulators(cls, envs: Sequence[TradingSimulator]) -> VecTradingSimulator:
        """Batch existing simulators: each keeps its bars, range and settings.

        Only their configuration and precomputed arrays are read; envs sharing a
        ``TradingSimulator`` object share its arrays.

        Raises:
            ValueError: With no envs, or envs whose action or observation spaces differ.
            TypeError: For an env that is not a bare ``TradingSimulator``.
        """
        envs = list(envs)
        for i, e in enumerate(envs):
            if not isinstance(e, TradingSimulator):
                raise TypeError(f"env {i} is a {type(e).__name__}, not a TradingSimulator")
        self = cls.__new__(cls)
        self._setup(envs, [(e.start, e.end) for e in envs], [None] * len(envs))
        return self

    def _setup(
        self,
        envs: list[TradingSimulator],
        ranges: list[tuple[int, int]],
        symbols: list[str | None],
    ) -> None:
        layout = stack(envs)
        n, first = len(envs), envs[0]
        self._rows, self._prices, self._params = layout.rows, layout.prices, layout.params
        self._indexes, self._blocks = layout.indexes, layout.blocks
        self._ranges = list(ranges)
        self.symbols = list(symbols)
        self.action_kind = first.action_kind
        self.observation_config = first.observation_config
        self._discrete = first.action_kind == "discrete"
        self._costs = [e.costs for e in envs]
        self._random_start = [e.random_start for e in envs]
        self._episode_length = [e.episode_length for e in envs]
        self._state = np.zeros((n, k.N_STATE), dtype=np.float64)
        self._cursor = np.zeros((n, k.N_CURSOR), dtype=np.int64)
        self._cursor[:, k.OFFSET] = layout.offsets
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._views = [EnvView(self, i) for i in range(n)]
        self._actions: np.ndarray | None = None
        self._ready = False
        self._info = np.zeros((k.N_INFO, n), dtype=np.float64)
        self._info_rows = self._info[: k.INFO_REWARD]  # what infos carry (a view, made once)
        self._info_bar = np.zeros(n, dtype=np.int64)
        self._info_truncated = np.zeros(n, dtype=np.bool_)
        super().__init__(n, first.observation_space, first.action_space)

    # -- VecEnv API ------------------------------------------------------------------------

    def step_async(self, actions: np.ndarray) -> None:
        """Take the actions (one per env) for :meth:`step_wait` (shape and type checked here)."""
        self._actions = check_actions(actions, self.num_envs, discrete=self._discrete)

    def step_wait(self) -> VecEnvStepReturn:
        """Step every env; finished envs are reset and report ``terminal_observation``.

        Raises:
            ValueError: On a discrete action outside 0..2 or a NaN exposure, naming the env;
                no env moves then.
            RuntimeError: Before the first :meth:`reset`, or without :meth:`step_async`.
        """
        if not self._ready:
            raise RuntimeError("step called before reset(); call reset() first")
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        actions, self._actions = self._actions, None
        n = self.num_envs
        obs = np.empty((n, self._rows.shape[1]), dtype=np.float32)
        rewards = np.empty(n, dtype=np.float32)
        dones = np.empty(n, dtype=np.bool_)
        finished = k.step_kernel(
            actions, self._discrete, self._state, self._cursor, self._params, self._rows,
            self._prices, obs, rewards, dones, self._info, self._info_bar, self._info_truncated,
        )  # fmt: skip
        if finished < 0:
            i = -1 - finished
            if i >= n:
                raise RuntimeError(f"env {i - n} ended its episode; call reset() first")
            if self._discrete:
                raise ValueError(
                    f"discrete action of env {i} must be 0, 1 or 2, got {actions[i].item()!r}"
                )
            raise ValueError(f"continuous action of env {i} is NaN")
        equity, position, drawdown = self._info_rows.tolist()
        infos = [
            {"equity": e, "position": p, "drawdown": d, "bar": b, "TimeLimit.truncated": tr}
            for e, p, d, b, tr in zip(
                equity,
                position,
                drawdown,
                self._info_bar.tolist(),
                self._info_truncated.tolist(),
                strict=True,
            )
        ]
        if finished:
            done = np.flatnonzero(dones).tolist()
            for i in done:
                infos[i]["terminal_observation"] = obs[i].copy()
            obs[done] = self._reset_envs(done)
        return obs, rewards, dones, infos

    @property
    def raw_rewards(self) -> np.ndarray:
        """The last step's rewards in float64 (``step`` returns them as float32, as SB3 does)."""
        return self._info[k.INFO_REWARD].copy()

    def reset(self) -> np.ndarray:
        """Start an episode in every env, with the seeds of :meth:`seed` and :meth:`set_options`."""
        obs = self._reset_envs(range(self.num_envs), seeds=self._seeds, options=self._options)
        self._reset_seeds()
        self._reset_options()
        self._ready = True
        return obs

    def _reset_envs(
        self,
        envs: Sequence[int],
        *,
        seeds: Sequence[int | None] | None = None,
        options: Sequence[dict[str, Any] | None] | None = None,
    ) -> np.ndarray:
        """Reset some envs (as ``TradingSimulator.reset``); returns their first observations."""
        idx = np.asarray(envs, dtype=np.intp)
        firsts = np.empty(len(idx), dtype=np.int64)
        lasts = np.empty(len(idx), dtype=np.int64)
        for j, i in enumerate(idx.tolist()):
            seed = None if seeds is None else seeds[j]
            if seed is not None:
                self._rngs[i], _ = seeding.np_random(seed)
            elif self._rngs[i] is None:
                self._rngs[i], _ = seeding.np_random()
            opts = None if options is None else options[j]
            lo, hi = self._ranges[i]
            firsts[j], lasts[j] = episode_bounds(
                lo,
                hi,
                random_start=self._random_start[i],
                episode_length=self._episode_length[i],
                rng=self._rngs[i],
                forced=None if not opts else opts.get("start"),
            )
            initial = float(self._params[i, k.INITIAL])
            self.reset_infos[i] = {
                "equity": initial,
                "position": 0.0,
                "drawdown": 0.0,
                "bar": int(firsts[j]),
            }
        initial = self._params[idx, k.INITIAL]
        self._state[idx] = 0.0
        for column in (k.CASH, k.EQUITY, k.PEAK, k.ENTRY):
            self._state[idx, column] = initial
        offsets = self._cursor[idx, k.OFFSET]
        rows = firsts + offsets
        self._cursor[idx, k.BAR] = rows
        self._cursor[idx, k.LAST] = lasts + offsets
        self._cursor[idx, k.RUINED] = 0
        self._cursor[idx, k.PENDING] = 0
        if len(idx) == self.num_envs:
            self._ready = True
        return self._rows[rows]

    def close(self) -> None:
        """Nothing to release (no processes, no files)."""

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """An attribute of each env (see :class:`~quant_pipelines.simulator._vec_view.EnvView`).

        Raises:
            AttributeError: For a name no env has.
        """
        return [getattr(self._views[i], attr_name) for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Change a per-env setting (one of ``SETTABLE``) of some envs.

        Raises:
            AttributeError: For a name that is not a settable per-env setting.
            ValueError: For a value ``TradingSimulator`` would refuse.
        """
        if attr_name not in SETTABLE:
            raise AttributeError(f"cannot set {attr_name!r}; settable per env: {list(SETTABLE)}")
        for i in self._get_indices(indices):
            setattr(self._views[i], attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """Call a per-env method (``reset``, ``target_of``, ``render``) on some envs."""
        return [
            getattr(self._views[i], method_name)(*method_args, **method_kwargs)
            for i in self._get_indices(indices)
        ]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        """Always False: the batched envs are not gymnasium envs, so nothing wraps them."""
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> list[None]:
        """No images: the simulator does not render."""
        return [None] * self.num_envs
