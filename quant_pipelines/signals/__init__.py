"""Signals and regimes: causal indicators and regime labels shared by every consumer.

Strategies, the trading simulator's observations and the data-quality features all read their
indicators from here. Every value at bar t depends on bars up to t only. How well the regime
labels match market history is measured by :mod:`quant_pipelines.signals.evaluation`.
"""

from __future__ import annotations

from quant_pipelines.signals.indicators import (
    atr,
    bollinger,
    donchian,
    ema,
    momentum,
    realized_volatility,
    rsi,
    sma,
)
from quant_pipelines.signals.regimes import LABELS, TRENDS, VOLATILITIES, regime_scores, regimes

__all__ = [
    "LABELS",
    "TRENDS",
    "VOLATILITIES",
    "atr",
    "bollinger",
    "donchian",
    "ema",
    "momentum",
    "realized_volatility",
    "regime_scores",
    "regimes",
    "rsi",
    "sma",
]
