"""The compiled step of :class:`~quant_pipelines.simulator.VecTradingSimulator`: all envs, one loop.

:func:`step_kernel` repeats ``TradingSimulator.step`` operation for operation, in the same IEEE
order (``fastmath`` off): the :class:`~quant_pipelines.backtest.fills.Book`'s clip, ruin,
in-force-target and pending-order rules around the shared
:func:`~quant_pipelines.backtest.fills.fill_order` (either cost model: each fill takes its
decision bar's impact and participation cap from ``prices``, 0 and ``inf`` for flat costs), the
reward, the drawdown limit and the observation's position and unrealised-P&L columns. The batched
envs therefore equal the single ones bit for bit, and through them the backtester
(``test_vec_parity.py`` pins both).

State lives in three arrays with one row per env (the column indices below): ``state`` (float64
book and reward state), ``cursor`` (int64 bar rows, absolute in the stacked bar data, the ruin
flag and the pending-order flag) and ``params`` (float64 settings). The outputs are written into
caller-owned arrays, so one call (one dispatch) does a whole step, action checks included.
Python's ``min(max(x, lo), hi)`` is written out as the comparisons it makes, so that NaN and
signed zeros pass through exactly as in the env.

After editing :func:`~quant_pipelines.backtest.fills.fill_order`, delete numba's cache
(``find quant_pipelines -name '*.nb[ic]' -delete``): it is keyed on this file, not on the fill's.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from quant_pipelines.backtest.fills import JIT_OPTIONS, fill_order
from quant_pipelines.simulator.env import DISCRETE_TARGETS

# ``state`` columns (float64).
UNITS, CASH, TARGET, EQUITY, PEAK, DRAWDOWN, ENTRY, SHARPE_A, SHARPE_B = range(9)
N_STATE = 9
# ``cursor`` columns (int64): current bar row and last bar row of the episode (absolute in the
# stacked bars), the row offset of the env's bars, the ruined flag, and whether the order for
# the target in force is only partly filled (``Book.pending``: the participation cap cut it).
BAR, LAST, OFFSET, RUINED, PENDING = range(5)
N_CURSOR = 5
# ``params`` columns (float64); ``MAX_DRAWDOWN`` is +inf for no limit.
COMMISSION, UP, DOWN, LOG_REWARD, PENALTY, ETA, REWARD_CLIP, MAX_DRAWDOWN, OBS_CLIP, INITIAL = (
    range(10)
)
N_PARAMS = 10
# ``prices`` columns (float64, one row per stacked bar): open, close, inverse volatility, and the
# bar's cost terms (``CostTerms.impact`` and ``.cap``), used by the fill at the next open.
OPEN, CLOSE, INV_VOL, IMPACT, CAP = range(5)
N_PRICES = 5
# ``info`` rows (float64): what ``info`` carries, plus the float64 reward.
INFO_EQUITY, INFO_POSITION, INFO_DRAWDOWN, INFO_REWARD = range(4)
N_INFO = 4

_DISCRETE = np.array(DISCRETE_TARGETS, dtype=np.float64)


@njit(**JIT_OPTIONS)
def step_kernel(
    actions: np.ndarray,
    discrete: bool,
    state: np.ndarray,
    cursor: np.ndarray,
    params: np.ndarray,
    rows: np.ndarray,
    prices: np.ndarray,
    obs: np.ndarray,
    rewards: np.ndarray,
    dones: np.ndarray,
    info: np.ndarray,
    info_bar: np.ndarray,
    info_truncated: np.ndarray,
) -> int:
    """Step every env one bar: fill at the next open, mark at its close, reward, observe.

    The actions are checked first: nothing moves when one is bad.

    Args:
        actions: ``(n,)`` discrete actions (int64) or continuous exposures (float64).
        discrete: Whether the actions are discrete (0, 1, 2 = exposure -1, 0, +1).
        state: ``(n, N_STATE)`` book and reward state, updated in place.
        cursor: ``(n, N_CURSOR)`` bar rows, ruin and pending flags, updated in place.
        params: ``(n, N_PARAMS)`` settings.
        rows: ``(rows, d)`` float32 precomputed observation rows of the stacked bars.
        prices: ``(rows, N_PRICES)`` open, close, inverse volatility, impact and cap of the
            stacked bars.
        obs: ``(n, d)`` float32 output: the observation after the step.
        rewards: ``(n,)`` float32 output: the clipped reward (as SB3 stores it).
        dones: ``(n,)`` bool output: terminated or truncated.
        info: ``(N_INFO, n)`` float64 output: equity, position, drawdown and the float64 reward.
        info_bar: ``(n,)`` int64 output: the bar position within the env's bars.
        info_truncated: ``(n,)`` bool output: truncated and not terminated.

    Returns:
        The number of finished envs; ``-1 - i`` when env ``i``'s action is invalid (a discrete
        action outside 0..2, or a NaN exposure); ``-1 - n - i`` when env ``i`` is at the end
        of its episode (it must be reset first).
    """
    n, d = obs.shape
    for i in range(n):
        a = actions[i]
        if (discrete and not 0 <= a <= 2) or a != a:
            return -1 - i
        if cursor[i, BAR] >= cursor[i, LAST]:  # never after an auto-reset; guards the indexing
            return -1 - n - i
    finished = 0
    for i in range(n):
        t = cursor[i, BAR] + 1
        target = _DISCRETE[int(actions[i])] if discrete else float(actions[i])
        target = -1.0 if target < -1.0 else target  # the env's min(max(a, -1), 1) ...
        target = 1.0 if target > 1.0 else target  # ... and the Book's clip (max_leverage 1)
        units = state[i, UNITS]
        cash = state[i, CASH]
        held = state[i, TARGET]
        entry = state[i, ENTRY]
        ruined = cursor[i, RUINED] != 0
        pending = cursor[i, PENDING] != 0
        if not ruined:  # Book.open
            open_equity = cash + units * prices[t, OPEN]
            if open_equity <= 0.0:
                ruined, units, cash, held, pending = True, 0.0, 0.0, 0.0, False
            elif target != held or pending:
                units, cash, _, _, _, pending = fill_order(
                    units,
                    cash,
                    target,
                    prices[t, OPEN],
                    open_equity,
                    params[i, COMMISSION],
                    params[i, UP],
                    params[i, DOWN],
                    prices[t - 1, IMPACT],  # the decision bar's terms
                    prices[t - 1, CAP],
                )
                held = target
                entry = open_equity  # the Fill's pre-fill equity, traded or not
        equity = 0.0
        if not ruined:  # Book.mark
            equity = cash + units * prices[t, CLOSE]
            if equity <= 0.0:
                ruined, units, cash, held, equity, pending = True, 0.0, 0.0, 0.0, 0.0, False
        previous = state[i, EQUITY]
        peak = state[i, PEAK]
        if equity > peak:
            peak = equity
        dd_prev = state[i, DRAWDOWN]
        dd = 1.0 - equity / peak
        clip = params[i, REWARD_CLIP]
        if params[i, LOG_REWARD] != 0.0:
            reward = math.log(equity / previous) if equity > 0.0 else -clip
        else:  # Moody-Saffell differential Sharpe, as TradingSimulator._differential_sharpe
            r = equity / previous - 1.0
            a = state[i, SHARPE_A]
            b = state[i, SHARPE_B]
            da = r - a
            db = r * r - b
            var = b - a * a
            reward = (b * da - 0.5 * a * db) / var**1.5 if var > 1e-12 else 0.0
            state[i, SHARPE_A] = a + params[i, ETA] * da
            state[i, SHARPE_B] = b + params[i, ETA] * db
        penalty = params[i, PENALTY]
        if penalty != 0.0 and dd > dd_prev:
            reward -= penalty * (dd - dd_prev)
        reward = -clip if reward < -clip else reward
        reward = clip if reward > clip else reward
        terminated = ruined or dd >= params[i, MAX_DRAWDOWN]
        truncated = not terminated and t >= cursor[i, LAST]
        for k in range(d):
            obs[i, k] = rows[t, k]
        obs[i, d - 2] = held
        if held != 0.0:
            c = params[i, OBS_CLIP]
            upnl = (equity / entry - 1.0) * prices[t, INV_VOL] if entry > 0 else 0.0
            upnl = -c if upnl < -c else upnl
            obs[i, d - 1] = c if upnl > c else upnl
        state[i, UNITS] = units
        state[i, CASH] = cash
        state[i, TARGET] = held
        state[i, EQUITY] = equity
        state[i, PEAK] = peak
        state[i, DRAWDOWN] = dd
        state[i, ENTRY] = entry
        cursor[i, BAR] = t
        cursor[i, RUINED] = 1 if ruined else 0
        cursor[i, PENDING] = 1 if pending else 0
        rewards[i] = reward
        dones[i] = terminated or truncated
        if terminated or truncated:
            finished += 1
        info[INFO_EQUITY, i] = equity
        info[INFO_POSITION, i] = held
        info[INFO_DRAWDOWN, i] = dd
        info[INFO_REWARD, i] = reward
        info_bar[i] = t - cursor[i, OFFSET]
        info_truncated[i] = truncated
    return finished
