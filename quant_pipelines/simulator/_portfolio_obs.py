"""Observations and actions of the portfolio simulator: stacked per-symbol features, weights.

Each symbol's causal features (:func:`~quant_pipelines.simulator.features.build_features`, on
its own bars) are laid on the union of sessions by carrying its last row forward over days it
does not trade (0 before its first session), windowed like the single-asset simulator's, and
stacked symbol after symbol. The book's held weights and its cash weight are appended per step.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from quant_pipelines.simulator._layout import window_matrix
from quant_pipelines.simulator.features import ObservationConfig, build_features, feature_names

ACTION_MODES: tuple[str, ...] = ("softmax", "clip")
"""``softmax``: long-only weights (the default); ``clip``: long-short, gross capped."""


def stacked_features(
    bars: Mapping[str, pd.DataFrame],
    symbols: tuple[str, ...],
    index: pd.Index,
    config: ObservationConfig,
    features: Mapping[str, pd.DataFrame] | None = None,
) -> np.ndarray:
    """``(n_bars, n_symbols * window * n_features)`` float32 observation rows on ``index``.

    Args:
        bars: Bars by symbol.
        symbols: The universe, in order.
        index: The union of sessions.
        config: Observation settings.
        features: Precomputed feature frames by symbol (e.g. on a longer history, to warm the
            indicators up); laid on ``index`` with their last row at or before each bar.

    Raises:
        ValueError: If a precomputed frame lacks the configured feature columns.
    """
    names = feature_names(config)
    blocks = []
    for s in symbols:
        if features is not None and s in features:
            frame = features[s]
            missing = [c for c in names if c not in frame.columns]
            if missing:
                raise ValueError(f"features of {s!r} lack the columns {missing}")
            frame = frame[names]
        else:
            frame = build_features(bars[s], config)
        laid = frame.reindex(frame.index.union(index)).ffill().reindex(index).fillna(0.0)
        blocks.append(window_matrix(laid.to_numpy(dtype=np.float32), config.window))
    return np.ascontiguousarray(np.concatenate(blocks, axis=1))


def action_targets(
    action: object,
    symbols: tuple[str, ...],
    *,
    mode: str,
    scale: float,
    max_gross_leverage: float,
) -> np.ndarray:
    """Target weights of an action ``(n_symbols + 1,)``: one entry per symbol, then cash.

    * ``softmax``: ``w = softmax(scale * action)`` over symbols and cash; the targets are
      ``max_gross_leverage * w[:n]`` (long-only; the cash entry takes the rest).
    * ``clip``: the targets are ``max_gross_leverage * clip(action[:n], -1, 1)`` (long-short;
      cash is the residual and the cash entry is not read).

    Either way a row whose gross ``Σ|w|`` exceeds the cap is scaled down to it, as the engine
    does (``_inputs.target_weights``).

    Raises:
        ValueError: On an action of the wrong shape, or holding a NaN or an infinity (named).
    """
    a = np.asarray(action, dtype=np.float64)
    n = len(symbols)
    if a.shape != (n + 1,):
        raise ValueError(
            f"action must have shape ({n + 1},): one weight per symbol {list(symbols)} and "
            f"one for cash; got shape {a.shape}"
        )
    bad = np.flatnonzero(~np.isfinite(a))
    if len(bad):
        j = int(bad[0])
        what = f"symbol {symbols[j]!r}" if j < n else "cash"
        raise ValueError(f"action[{j}] ({what}) is {float(a[j])}; actions must be finite")
    if mode == "softmax":
        z = scale * a
        w = np.exp(z - z.max())
        w = max_gross_leverage * (w[:n] / w.sum())
    else:
        w = max_gross_leverage * np.clip(a[:n], -1.0, 1.0)
    gross = np.abs(w).sum()
    if gross > max_gross_leverage:
        w = w * (max_gross_leverage / gross)
    return w
