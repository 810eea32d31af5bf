"""Data-quality sentinel benchmarks: scoring throughput and the latency of one daily batch.

Models are fitted before any timing (that is the weekly job); the timed code is what the daily
job runs: features, Isolation Forest and Prophet prediction, severity, and (for the batch)
loading the stored Prophet JSON and the cross-sectional market-event pass.

The real-series figures replay GOOG's daily bars (2004-2013, shipped with backtesting.py) as
production runs them, one bar per scoring call and a refit every 5 sessions, with today's scorer
and with the frozen copy in :mod:`quant_pipelines.bench._legacy_quality`, interleaved bar by bar
in the same process so that machine load hits both alike.
"""

from __future__ import annotations

import time

import pandas as pd

from quant_pipelines.bench import _legacy_quality as legacy
from quant_pipelines.bench._report import Figure, timed
from quant_pipelines.marketdata import ASSET_CLASSES, Symbol, SyntheticSource, Universe
from quant_pipelines.marketdata.calendars import session_bounds
from quant_pipelines.quality import (
    DEFAULT_THRESHOLDS,
    ProphetModels,
    SymbolModels,
    build_features,
    fit_iforest,
    fit_models,
    mark_market_events,
    score_bars,
)
from quant_pipelines.quality.features import model_matrix

AREA = "quality"
_HISTORY = ("2022-01-01", "2023-12-31")
_DAY = "2024-01-02"  # a session of every calendar


def _universe(n: int) -> Universe:
    return Universe(
        Symbol(name=f"SYN{i:03d}", asset_class=ASSET_CLASSES[i % len(ASSET_CLASSES)])
        for i in range(n)
    )


def _throughput(source: SyntheticSource, *, n_bars: int, repeat: int) -> list[Figure]:
    bars = source.bars("AAPL", "2019-01-01", "2024-12-31")
    history, batch = bars.iloc[:-n_bars].iloc[-400:], bars.iloc[-n_bars:]
    models = fit_models(history, calendar="XNYS")
    features = build_features(batch, history=history, calendar="XNYS")
    matrix = model_matrix(features)
    forest = models.iforest.estimator

    full = timed(
        lambda: score_bars(
            batch,
            history=history,
            models=models,
            thresholds=DEFAULT_THRESHOLDS,
            calendar="XNYS",
        ),
        repeat=repeat,
    )
    raw = timed(lambda: forest.score_samples(matrix), repeat=repeat)
    return [
        Figure(
            AREA,
            f"scoring throughput, full scorer ({n_bars}-bar batch: rules, features, "
            "Isolation Forest, Prophet predict, severity)",
            n_bars / full,
            "bars/s",
            "raw IsolationForest.score_samples on the same feature matrix",
            n_bars / raw,
        )
    ]


def _daily_batch(n_symbols: int, *, repeat: int) -> list[Figure]:
    universe = _universe(n_symbols)
    source = SyntheticSource(0, universe=universe)
    inputs = {}
    for sym in universe:
        bars = source.bars(sym, _HISTORY[0], _DAY)
        history, today = bars.iloc[:-1], bars.iloc[-1:]
        models = fit_models(history.iloc[-330:], calendar=sym.calendar)
        stored = models.prophet.to_json() if models.prophet is not None else None
        inputs[sym.name] = (sym, history.iloc[-160:], today, models, stored)
    classes = {sym.name: sym.asset_class for sym in universe}

    def full_batch() -> None:
        scores = {}
        for name, (sym, history, today, models, stored) in inputs.items():
            prophet = ProphetModels.from_json(stored) if stored is not None else None
            scores[name] = score_bars(
                today,
                history=history,
                models=SymbolModels(models.iforest, prophet),
                thresholds=DEFAULT_THRESHOLDS,
                calendar=sym.calendar,
            )
        mark_market_events(scores, classes)

    def iforest_batch() -> None:
        scores = {}
        for name, (sym, history, today, models, _) in inputs.items():
            scores[name] = score_bars(
                today,
                history=history,
                models=SymbolModels(models.iforest, None),
                thresholds=DEFAULT_THRESHOLDS,
                calendar=sym.calendar,
            )
        mark_market_events(scores, classes)

    one = next(iter(inputs.values()))
    history_one = pd.concat([one[1], one[2]])
    refit = timed(lambda: fit_models(history_one, calendar=one[0].calendar), repeat=repeat)
    feats = build_features(history_one, calendar=one[0].calendar)
    refit_if = timed(lambda: fit_iforest(feats), repeat=repeat)
    return [
        Figure(
            AREA,
            f"daily batch latency, {n_symbols} symbols (load Prophet JSON, score one bar each, "
            "market events)",
            timed(full_batch, repeat=repeat),
            "s",
            "the same batch with the Isolation Forest only (no Prophet)",
            timed(iforest_batch, repeat=repeat),
            higher_is_better=False,
        ),
        Figure(
            AREA,
            "weekly refit of one symbol (Isolation Forest + 2 Prophet fits)",
            refit,
            "s",
            "Isolation Forest fit only",
            refit_if,
            higher_is_better=False,
        ),
    ]


def _goog() -> pd.DataFrame:
    """GOOG's daily bars (backtesting.py's test data) at the XNYS session opens."""
    from backtesting.test import GOOG  # dev dependency: real bars, nothing downloads

    bars = GOOG.rename(columns=str.lower)[["open", "high", "low", "close", "volume"]]
    bars = bars.astype("float64")
    opens, _ = session_bounds("XNYS", pd.DatetimeIndex(bars.index).as_unit("ns"))
    bars.index = pd.DatetimeIndex(opens, name="ts")
    return bars


def _real_series(*, n_bars: int | None, refit_every: int = 5, window: int = 250) -> list[Figure]:
    """Daily replay of GOOG: today's scorer against the frozen one, interleaved bar by bar."""
    bars = _goog()
    end = len(bars) if n_bars is None else min(len(bars), window + n_bars)
    clock = time.perf_counter
    spent = {"score": [0.0, 0.0], "fit": [0.0, 0.0]}  # [today, frozen]
    fits = (fit_models, legacy.fit_models)
    scorers = (score_bars, legacy.score_bars)
    models: list = [None, None]
    for pos in range(window, end):
        history, today = bars.iloc[:pos], bars.iloc[pos : pos + 1]
        order = (0, 1) if pos % 2 else (1, 0)  # neither always runs first
        if (pos - window) % refit_every == 0:
            train = history.iloc[-(window + 80) :]
            for i in order:
                t0 = clock()
                models[i] = fits[i](train, calendar="XNYS")
                spent["fit"][i] += clock() - t0
        for i in order:
            t0 = clock()
            scorers[i](today, history=history, models=models[i], calendar="XNYS")
            spent["score"][i] += clock() - t0
    n = end - window
    refits = -(-n // refit_every)
    return [
        Figure(
            AREA,
            f"daily replay of a real series (GOOG, {n} sessions, one bar per call, refit every "
            f"{refit_every}): scoring throughput",
            n / spent["score"][0],
            "bars/s",
            "the scorer as committed before the real-data work (frozen copy, same bars)",
            n / spent["score"][1],
            goal=round(1 / 1.5, 3),
        ),
        Figure(
            AREA,
            f"weekly refit during that replay (GOOG, {refits} refits: Isolation Forest + 2 "
            "Prophet fits)",
            spent["fit"][0] / refits,
            "s",
            "the frozen copy's refit on the same windows",
            spent["fit"][1] / refits,
            goal=round(1 / 1.5, 3),
            higher_is_better=False,
        ),
    ]


def run(*, quick: bool = False) -> list[Figure]:
    """Measures the sentinel's scoring throughput and daily-batch latency.

    Args:
        quick: Small sizes (a few seconds) instead of a 100-symbol batch and the
            whole GOOG series (1,898 scored sessions: several minutes).

    Returns:
        The figures.
    """
    source = SyntheticSource(0)
    repeat = 1 if quick else 3
    figures = _throughput(source, n_bars=60 if quick else 250, repeat=repeat)
    figures += _daily_batch(10 if quick else 100, repeat=repeat)
    figures += _real_series(n_bars=60 if quick else None)
    return figures
