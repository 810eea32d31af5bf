"""Causal, scale-free observation features for the trading simulator.

Every feature at bar t is computed from bars up to t only (the indicators and regime labels come
from :mod:`quant_pipelines.signals`), and is normalised without fitted statistics: prices enter
as ratios, and ratios are divided by the bar's own causal volatility. The same bars therefore
give the same features whether they are replayed alone or inside a longer history, and nothing
from a validation or held-out period leaks into training through a scaler. Every value is
clipped to ``[-clip, clip]``; warm-up bars (indicator still NaN) are 0.

The columns, in order (:func:`feature_names`):

* ``ret`` -- log return over the bar divided by the 20-bar realised volatility;
* ``vol`` -- ``log(rv_fast / rv_slow)``: short-run over long-run realised volatility;
* ``rsi`` -- ``(RSI_14 - 50) / 25``;
* ``bb`` -- ``2 * (Bollinger %b - 0.5)`` (20 bars, 2 standard deviations);
* ``mom`` -- 20-bar momentum over ``rv * sqrt(20)``;
* ``ema_gap`` -- ``(close / EMA_20 - 1) / rv``;
* ``donchian`` -- close within the 20-bar channel, in ``[-1, 1]``;
* ``atr`` -- ``(ATR_14 / close) / rv - 1``: bar range relative to close-to-close volatility;
* ``regime_<label>`` -- one-hot of :data:`quant_pipelines.signals.LABELS` (six columns).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from quant_pipelines.signals import (
    LABELS,
    atr,
    bollinger,
    donchian,
    ema,
    momentum,
    realized_volatility,
    regimes,
    rsi,
)

BASE_FEATURES: tuple[str, ...] = (
    "ret",
    "vol",
    "rsi",
    "bb",
    "mom",
    "ema_gap",
    "donchian",
    "atr",
)
"""The continuous feature columns, in order."""


@dataclass(frozen=True)
class ObservationConfig:
    """How observations are built.

    Attributes:
        window: Bars of features in one observation (the latest ``window`` rows, flattened).
        vol_window: Realised-volatility window that scales returns and gaps.
        slow_vol_window: Long realised-volatility window of the ``vol`` feature.
        indicator_window: Window of Bollinger, momentum, EMA and Donchian features.
        regime_one_hot: Append the six regime-label one-hot columns.
        clip: Features (and position / unrealised P&L) are clipped to ``[-clip, clip]``.
    """

    window: int = 10
    vol_window: int = 20
    slow_vol_window: int = 100
    indicator_window: int = 20
    regime_one_hot: bool = True
    clip: float = 5.0

    def __post_init__(self) -> None:
        for name in ("window", "vol_window", "slow_vol_window", "indicator_window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.vol_window < 2 or self.slow_vol_window < 2:
            raise ValueError("volatility windows must be >= 2")
        if not (np.isfinite(self.clip) and self.clip > 0):
            raise ValueError(f"clip must be a positive number, got {self.clip!r}")

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a JSON-friendly dict (stored with a trained policy)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ObservationConfig:
        """Rebuild a configuration from :meth:`to_dict` output (None gives the default)."""
        return cls(**(data or {}))


def feature_names(config: ObservationConfig | None = None) -> list[str]:
    """Names of the feature columns :func:`build_features` returns, in order."""
    cfg = config or ObservationConfig()
    names = list(BASE_FEATURES)
    if cfg.regime_one_hot:
        names += [f"regime_{label}" for label in LABELS]
    return names


def build_features(bars: pd.DataFrame, config: ObservationConfig | None = None) -> pd.DataFrame:
    """Compute the per-bar observation features.

    Args:
        bars: Bars in the project's schema (``high``, ``low``, ``close`` are used).
        config: Observation settings; the default when None.

    Returns:
        A float32 frame on the bars' index with the columns of :func:`feature_names`; finite,
        within ``[-clip, clip]``, 0 during indicator warm-up.
    """
    cfg = config or ObservationConfig()
    close = bars["close"].astype("float64")
    w = cfg.indicator_window
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ret = np.log(close).diff()
        rv = realized_volatility(close, cfg.vol_window)
        rv_slow = realized_volatility(close, cfg.slow_vol_window)
        rv_pos = rv.where(rv > 0)
        channel = donchian(bars, w)
        width = channel["upper"] - channel["lower"]
        cols = {
            "ret": log_ret / rv_pos,
            "vol": np.log(rv_pos / rv_slow.where(rv_slow > 0)),
            "rsi": (rsi(close, 14) - 50.0) / 25.0,
            "bb": 2.0 * (bollinger(close, w)["percent_b"] - 0.5),
            "mom": momentum(close, w) / (rv_pos * np.sqrt(w)),
            "ema_gap": (close / ema(close, w) - 1.0) / rv_pos,
            "donchian": (2.0 * (close - channel["mid"]) / width).where(width > 0),
            "atr": (atr(bars, 14) / close) / rv_pos - 1.0,
        }
    frame = pd.DataFrame(cols, index=bars.index)
    if cfg.regime_one_hot:
        labels = regimes(bars)["label"].to_numpy()
        for label in LABELS:
            frame[f"regime_{label}"] = (labels == label).astype("float64")
    values = frame.to_numpy(dtype=np.float64)
    values = np.clip(
        np.nan_to_num(values, nan=0.0, posinf=cfg.clip, neginf=-cfg.clip), -cfg.clip, cfg.clip
    )
    return pd.DataFrame(values.astype(np.float32), index=bars.index, columns=feature_names(cfg))
