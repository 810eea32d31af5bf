"""Inputs of :class:`~quant_pipelines.simulator.VecTradingSimulator`: frames, envs, actions.

:func:`stack` lays N simulators out for the compiled step: the precomputed observation rows and
prices of every distinct simulator stacked into one array each, and one row of settings per env.
:func:`check_actions` turns a batch of actions into what the kernel takes, refusing bad shapes
and types (the kernel itself refuses out-of-range values and NaN before anything moves).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from quant_pipelines.simulator.env import TradingSimulator

_PER_ENV = (list, tuple, np.ndarray, pd.Index)
_INT64 = np.dtype(np.int64)


def frames_of(bars: Any) -> tuple[list[pd.DataFrame], list[str | None]]:
    """The bar frames and their symbols (mapping keys; None for a frame or a sequence).

    Raises:
        TypeError: For anything but a DataFrame, a sequence or a mapping of them.
        ValueError: For no frames.
    """
    if isinstance(bars, pd.DataFrame):
        return [bars], [None]
    if isinstance(bars, Mapping):
        frames, symbols = list(bars.values()), [str(s) for s in bars]
    elif isinstance(bars, Sequence) and not isinstance(bars, str):
        frames, symbols = list(bars), [None] * len(bars)
    else:
        raise TypeError(f"bars must be a DataFrame, a sequence or a mapping of them, got {bars!r}")
    if not frames:
        raise ValueError("VecTradingSimulator needs at least one bar frame, got none")
    return frames, symbols


def per_env(value: Any, n: int, name: str) -> list[Any]:
    """``value`` for each of ``n`` envs: a list/tuple/array/Index is one value per env.

    Raises:
        ValueError: When a per-env value does not have ``n`` items.
    """
    if not isinstance(value, _PER_ENV):
        return [value] * n
    if len(value) != n:
        raise ValueError(f"{name} has {len(value)} values for {n} envs")
    return list(value)


@dataclass(frozen=True)
class Stacked:
    """N simulators laid out for :func:`~quant_pipelines.simulator._vec_kernel.step_kernel`.

    Attributes:
        rows: ``(rows, d)`` float32 observation rows of every distinct simulator, stacked.
        prices: ``(rows, N_PRICES)`` open, close, inverse volatility and the cost terms
            (impact, participation cap) of each bar, stacked the same way.
        indexes: The bars' index of each distinct simulator.
        blocks: Per env, which distinct simulator (block) it reads.
        offsets: Per env, the first stacked row of its block.
        params: ``(n, N_PARAMS)`` settings of each env.
    """

    rows: np.ndarray
    prices: np.ndarray
    indexes: list[pd.Index]
    blocks: list[int]
    offsets: np.ndarray
    params: np.ndarray


def stack(envs: Sequence[TradingSimulator]) -> Stacked:
    """Lay out simulators (envs that are the same object share their block).

    Raises:
        ValueError: With no envs, or envs whose action or observation spaces differ.
    """
    if not envs:
        raise ValueError("VecTradingSimulator needs at least one env (n_envs >= 1), got 0")
    first = envs[0]
    for i, e in enumerate(envs):
        if e.action_kind != first.action_kind or e.observation_space != first.observation_space:
            raise ValueError(f"env {i} has other action or observation spaces than env 0")
    block_of: dict[int, int] = {}
    rows, prices, indexes, starts = [], [], [], [0]
    for e in envs:
        if id(e) not in block_of:
            block_of[id(e)] = len(rows)
            rows.append(e._obs)
            prices.append(np.column_stack([e._open, e._close, e._inv_vol, e._impact, e._cap]))
            indexes.append(e.bars_index)
            starts.append(starts[-1] + len(e._obs))
    blocks = [block_of[id(e)] for e in envs]
    params = np.array(
        [
            [
                e.costs.commission,
                1.0 + e.costs.slippage,
                1.0 - e.costs.slippage,
                1.0 if e.reward_kind == "log" else 0.0,
                e.drawdown_penalty,
                e.sharpe_eta,
                e.reward_clip,
                math.inf if e.max_drawdown is None else e.max_drawdown,
                e._clip,
                e.initial_equity,
            ]
            for e in envs
        ],
        dtype=np.float64,
    )
    return Stacked(
        rows=np.ascontiguousarray(np.concatenate(rows), dtype=np.float32),
        prices=np.ascontiguousarray(np.concatenate(prices), dtype=np.float64),
        indexes=indexes,
        blocks=blocks,
        offsets=np.array([starts[b] for b in blocks], dtype=np.int64),
        params=params,
    )


def check_actions(actions: Any, n: int, *, discrete: bool) -> np.ndarray:
    """A batch of actions as the kernel takes them: int64 (discrete) or float64, shape ``(n,)``.

    Discrete actions have shape ``(n,)`` and integer values (integral floats are accepted);
    continuous ones shape ``(n, 1)`` or ``(n,)``.

    Raises:
        ValueError: On a wrong shape or dtype, or a discrete value that is not 0, 1 or 2
            (int64 values are range-checked by the kernel, NaN exposures too).
    """
    a = actions if type(actions) is np.ndarray else np.asarray(actions)
    if discrete and a.dtype is _INT64 and a.ndim == 1 and len(a) == n:
        return a  # what SB3 passes (checked against 0..2 by the kernel)
    kind = a.dtype.kind
    if discrete:
        if a.shape != (n,):
            raise ValueError(f"expected {n} discrete actions of shape ({n},), got {a.shape}")
        if a.dtype == _INT64:
            return a
        if kind not in "iuf":
            raise ValueError(f"discrete actions must be integers 0, 1 or 2, got {a.dtype}")
        bad = (a < 0) | (a > 2)
        if kind == "f":
            bad |= a != np.floor(a)  # fractions and NaN
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"discrete action of env {i} must be 0, 1 or 2, got {a[i].item()!r}")
        return a.astype(np.int64)
    if a.shape not in ((n, 1), (n,)):
        raise ValueError(f"expected {n} continuous actions of shape ({n}, 1), got {a.shape}")
    if kind not in "iuf":
        raise ValueError(f"continuous actions must be numbers, got dtype {a.dtype}")
    return a.reshape(n).astype(np.float64, copy=False)
