"""Allocators: target weights for a universe from trailing, causal risk estimates.

Four sizing rules, each long-only and fully invested on the symbols it holds:

* ``equal`` - 1/n;
* ``inverse_vol`` - proportional to 1/σ, σ the sample standard deviation of the trailing
  ``window`` returns;
* ``risk_parity`` - equal risk contribution on the trailing Ledoit-Wolf covariance (skfolio);
* ``min_variance`` - minimum variance on the same covariance (skfolio).

The weights of bar t use returns up to t only and are decided at t's close (the portfolio
engine fills them at the next open). They are recomputed on rebalance dates, and on any bar
where the set of held symbols (or a sign) changes; in between the last weights are repeated.

A *selection* (+1 long, -1 short, 0 out, per bar and symbol) restricts and signs the holdings:
strategies pick the symbols, the allocator sizes them. A short leg enters the risk-based rules
through the sign-adjusted covariance ``DΣD`` (D = diag of the signs), so the rule sizes the
signed portfolio; the weights' absolute values sum to 1 (gross exposure 1).

A symbol is held only once it is *eligible* at t: it has a close (``equal``), or it has at least
``min_periods`` returns in the window and a volatility above 1e-8 (the other rules). Symbols that
have not started trading yet get weight 0. Covariance rules use the trailing rows that every
held symbol has (at least ``min_periods``, at most ``window``); shrinkage keeps the covariance
invertible with fewer rows than symbols.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from quant_pipelines.backtest.portfolio._cov import (
    equal_weights,
    inverse_volatility_weights,
    min_variance_weights,
    risk_contributions,
    risk_parity_weights,
    shrunk_covariance,
)
from quant_pipelines.backtest.portfolio._xs_panel import (
    Panel,
    Rebalance,
    build_panel,
    rebalance_mask,
)

ALLOCATORS: tuple[str, ...] = ("equal", "inverse_vol", "risk_parity", "min_variance")
MIN_VOLATILITY = 1e-8

_SOLVERS: Mapping[str, Callable[[np.ndarray], np.ndarray]] = {
    "risk_parity": risk_parity_weights,
    "min_variance": min_variance_weights,
}

__all__ = [
    "ALLOCATORS",
    "MIN_VOLATILITY",
    "allocate",
    "allocate_panel",
    "check_allocator",
    "eligibility",
    "equal_weights",
    "inverse_volatility_weights",
    "min_variance_weights",
    "risk_contributions",
    "risk_parity_weights",
    "shrunk_covariance",
]


def check_allocator(name: str) -> str:
    """``name`` if it is a known allocator.

    Raises:
        ValueError: Naming the unknown allocator and the known ones.
    """
    if name not in ALLOCATORS:
        raise ValueError(f"unknown allocator {name!r}; known allocators: {list(ALLOCATORS)}")
    return name


def _check_window(window: int, min_periods: int | None) -> tuple[int, int]:
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 2:
        raise ValueError(f"window must be an integer >= 2 bars, got {window!r}")
    mp = window if min_periods is None else min_periods
    if isinstance(mp, bool) or not isinstance(mp, int | np.integer) or not 2 <= mp <= window:
        raise ValueError(f"min_periods must be an integer in [2, window={window}], got {mp!r}")
    return int(window), int(mp)


def allocate(
    bars: Mapping[str, pd.DataFrame],
    allocator: str = "equal",
    *,
    window: int = 63,
    min_periods: int | None = None,
    rebalance: Rebalance = "monthly",
    selection: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Target weights of a universe sized by ``allocator`` on trailing returns.

    Args:
        bars: Bar frames by symbol (``close`` is used).
        allocator: One of :data:`ALLOCATORS`.
        window: Trailing returns (bars) behind the volatility and covariance.
        min_periods: Fewest returns that make a symbol eligible; ``window`` when None.
        rebalance: ``"daily"``, ``"weekly"``, ``"monthly"``, every k bars (int), or a set of
            timestamps (see :func:`~quant_pipelines.backtest.portfolio._xs_panel.rebalance_mask`).
        selection: Optional signs (+1 / -1 / 0) on the union of sessions and the symbols;
            every eligible symbol is held long when None.

    Returns:
        Weights on the union of sessions (rows) and the symbols (columns); no NaN.

    Raises:
        ValueError: On bad bars (see ``build_panel``), an unknown allocator or rebalance rule,
            a bad window, or a selection that is misaligned or holds NaN.
    """
    check_allocator(allocator)
    panel = build_panel(bars, who=f"allocate({allocator!r})")
    signs = None if selection is None else _selection_signs(panel, selection)
    w = allocate_panel(
        panel,
        allocator,
        window=window,
        min_periods=min_periods,
        rebalance=rebalance_mask(panel.index, rebalance),
        selection=signs,
    )
    return panel.frame(w)


def _selection_signs(panel: Panel, selection: pd.DataFrame) -> np.ndarray:
    missing = [s for s in panel.symbols if s not in selection.columns]
    extra = [s for s in selection.columns if s not in panel.symbols]
    if missing or extra:
        raise ValueError(
            f"selection columns differ from the symbols: missing {missing}, extra {extra}"
        )
    if not selection.index.equals(panel.index):
        raise ValueError("selection is not on the union of the bars' sessions; reindex it first")
    x = selection[list(panel.symbols)].to_numpy(dtype=np.float64)
    if np.isnan(x).any():
        i, j = np.argwhere(np.isnan(x))[0]
        raise ValueError(f"selection is NaN for {panel.symbols[j]!r} at {panel.index[i]}")
    return np.sign(x)


def allocate_panel(
    panel: Panel,
    allocator: str,
    *,
    window: int,
    min_periods: int | None,
    rebalance: np.ndarray,
    selection: np.ndarray | None = None,
) -> np.ndarray:
    """Weights of :func:`allocate` on an aligned panel, as an ``(n_bars, n_symbols)`` array.

    ``rebalance`` is a boolean mask of the rebalance bars (see ``rebalance_mask``) and
    ``selection`` an ``(n_bars, n_symbols)`` array of signs, or None to hold every eligible
    symbol long.
    """
    check_allocator(allocator)
    window, min_periods = _check_window(window, min_periods)
    eligible, count, sigma = eligibility(panel, allocator, window=window, min_periods=min_periods)
    n, m = panel.shape
    held = eligible.astype(np.float64)
    if selection is not None:
        held *= selection
    change = np.asarray(rebalance, dtype=bool).copy()
    change[1:] |= (held[1:] != held[:-1]).any(axis=1)
    rows = np.flatnonzero(change)
    if allocator in _SOLVERS:
        sized = _solve_rows(panel, held, count, rows, _SOLVERS[allocator])
    else:
        base = np.abs(held[rows])
        if sigma is not None:  # inverse_vol
            base = base / np.where(base > 0, sigma[rows], 1.0)
        total = base.sum(axis=1, keepdims=True)
        sized = np.sign(held[rows]) * base / np.where(total > 0, total, 1.0)
    pos = np.cumsum(change) - 1  # row of the last recompute at or before each bar
    out = np.zeros((n, m))
    live = pos >= 0
    out[live] = sized[pos[live]]
    return out


def eligibility(
    panel: Panel, allocator: str, *, window: int, min_periods: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Which symbols an allocator may hold at each bar, with the data behind it.

    Returns:
        ``(eligible, count, sigma)``: booleans, the number of returns in the trailing window,
        and their sample standard deviation (NaN below ``min_periods``; None for ``equal``,
        which needs no history), each ``(n, m)``.
    """
    n, _ = panel.shape
    t = np.arange(n)[:, None]
    count = np.clip(t - panel.start[None, :], 0, window)
    if allocator == "equal":
        return t >= panel.start[None, :], count, None
    sigma = pd.DataFrame(panel.returns).rolling(window, min_periods=min_periods).std().to_numpy()
    return (count >= min_periods) & (sigma > MIN_VOLATILITY), count, sigma


def _solve_rows(
    panel: Panel,
    held: np.ndarray,
    count: np.ndarray,
    rows: np.ndarray,
    solver: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Risk-based weights at each recompute row, on the signed shrunk covariance."""
    out = np.zeros((len(rows), held.shape[1]))
    for i, r in enumerate(rows):
        cols = np.flatnonzero(held[r])
        if len(cols) == 0:
            continue
        signs = held[r, cols]
        if len(cols) == 1:
            out[i, cols] = signs
            continue
        k = int(count[r, cols].min())
        block = panel.returns[r - k + 1 : r + 1, cols] * signs
        try:
            out[i, cols] = signs * solver(shrunk_covariance(block))
        except RuntimeError as exc:
            raise RuntimeError(
                f"allocation failed at {panel.index[r]} for {[panel.symbols[j] for j in cols]}"
            ) from exc
    return out
