"""Cross-sectional ranking: trailing-return scores and top-k selection on rebalance dates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from quant_pipelines.backtest.portfolio._xs_base import PortfolioStrategy, check_int
from quant_pipelines.backtest.portfolio._xs_panel import Panel, rebalance_mask
from quant_pipelines.backtest.portfolio.allocators import allocate_panel, eligibility


def sized(panel: Panel, p: Mapping[str, Any], selection: np.ndarray | None) -> np.ndarray:
    """Weights from ``allocate_panel`` with a strategy's allocator, risk window and rebalance."""
    return allocate_panel(
        panel,
        p["allocator"],
        window=p["risk_window"],
        min_periods=None,
        rebalance=rebalance_mask(panel.index, p["rebalance"]),
        selection=selection,
    )


class CrossSectional(PortfolioStrategy):
    """Rank symbols by a trailing return on rebalance dates; hold the best ``k``."""

    family = "cross_sectional"
    direction: float = 1.0  # +1: best = highest return; -1: best = lowest

    def check_params(self, params: Mapping[str, Any]) -> None:
        super().check_params(params)
        lookback = check_int(self.name, params, "lookback", 1)
        skip = check_int(self.name, params, "skip", 0)
        if skip >= lookback:
            raise ValueError(f"{self.name}: 'skip' ({skip}) must be < 'lookback' ({lookback})")
        check_int(self.name, params, "k", 0)
        f = params["fraction"]
        if isinstance(f, bool) or not isinstance(f, int | float | np.number) or not 0 < f <= 1:
            raise ValueError(f"{self.name}: parameter 'fraction' must be in (0, 1], got {f!r}")
        if not isinstance(params["long_short"], bool | np.bool_):
            raise ValueError(f"{self.name}: parameter 'long_short' must be a bool")

    def scores(self, panel: Panel, lookback: int, skip: int) -> np.ndarray:
        """Return from ``lookback`` to ``skip`` bars ago of each symbol, on the union."""
        out = np.empty(panel.shape)
        for j, s in enumerate(panel.symbols):
            c = panel.bars[s]["close"].to_numpy(dtype=np.float64)
            r = np.full(len(c), np.nan)
            if len(c) > lookback:
                r[lookback:] = c[lookback - skip : len(c) - skip] / c[: len(c) - lookback] - 1.0
            out[:, j] = panel.align(s, r)
        return out

    def compute(self, panel: Panel, params: Mapping[str, Any]) -> np.ndarray:
        p = params
        mask = rebalance_mask(panel.index, p["rebalance"])
        rows = np.flatnonzero(mask)
        eligible, _, _ = eligibility(
            panel, p["allocator"], window=p["risk_window"], min_periods=p["risk_window"]
        )
        score = self.direction * self.scores(panel, p["lookback"], p["skip"])[rows]
        picks = select_top_k(
            score, eligible[rows], k=p["k"], fraction=p["fraction"], long_short=p["long_short"]
        )
        selection = np.zeros(panel.shape)
        pos = np.cumsum(mask) - 1
        live = pos >= 0
        selection[live] = picks[pos[live]]
        return sized(panel, p, selection)


def select_top_k(
    score: np.ndarray, candidate: np.ndarray, *, k: int, fraction: float, long_short: bool
) -> np.ndarray:
    """Signs per row: +1 for the k highest scores among candidates (-1 for the k lowest).

    Args:
        score: ``(rows, symbols)`` scores; NaN is never picked.
        candidate: Which symbols may be picked.
        k: Symbols per side; when 0, ``max(1, floor(fraction x candidates))``.
        fraction: Share of the candidates per side, used when ``k`` is 0.
        long_short: Also short the k lowest (k is capped at half the candidates).

    Returns:
        A float array of +1 / -1 / 0 shaped like ``score``.
    """
    cand = candidate & np.isfinite(score)
    n_c = cand.sum(axis=1)
    per_side = np.full(len(score), k) if k > 0 else np.maximum(1, np.floor(fraction * n_c + 1e-9))
    per_side = np.minimum(per_side, n_c // 2 if long_short else n_c)[:, None]
    key = np.where(cand, score, -np.inf)
    order = np.argsort(-key, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(score.shape[1])[None, :], axis=1)
    out = (cand & (rank < per_side)).astype(np.float64)
    if long_short:
        out -= cand & (rank >= n_c[:, None] - per_side)
    return out
