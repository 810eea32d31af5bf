"""Data-quality sentinel benchmarks: scoring throughput and the latency of one daily batch.

Models are fitted before any timing (that is the weekly job, which now also stores Prophet's
forecast band until the next fit); the timed code is what the daily job runs: features, rules,
the Isolation Forest, the Prophet band (or predict, outside it), severity, and (for the batch)
loading the stored Prophet JSON and the cross-sectional market-event pass.

Two references are frozen copies measured in the same process: the per-symbol daily path as it
was before the band and the batched pass (:mod:`quant_pipelines.bench._legacy_daily`, fed the
same fits, stored as the format-2 JSON it wrote), and the scorer before the real-data work
(:mod:`quant_pipelines.bench._legacy_quality`, for the GOOG replay). Each pair is interleaved
round by round, best of the rounds, so machine load hits both alike.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from quant_pipelines.bench import _legacy_daily as daily
from quant_pipelines.bench import _legacy_quality as legacy
from quant_pipelines.bench._report import Figure, timed
from quant_pipelines.marketdata import ASSET_CLASSES, Symbol, SyntheticSource, Universe
from quant_pipelines.marketdata.calendars import session_bounds
from quant_pipelines.quality import (
    DEFAULT_THRESHOLDS,
    ProphetModels,
    SymbolBatch,
    SymbolModels,
    build_features,
    fit_iforest,
    fit_models,
    mark_market_events,
    score_bars,
    score_symbols,
)
from quant_pipelines.quality.features import model_matrix

AREA = "quality"
_HISTORY = ("2022-01-01", "2023-12-31")
_DAY = "2024-01-02"  # a session of every calendar
_WEEK = ("2024-01-08", "2024-01-12")  # Monday to Friday: one week of XNYS sessions
_DAILY_GOAL_S = 1.0  # the 100-symbol daily batch, absolute


def _universe(n: int, classes: tuple[str, ...] = ASSET_CLASSES) -> Universe:
    return Universe(
        Symbol(name=f"SYN{i:03d}", asset_class=classes[i % len(classes)]) for i in range(n)
    )


def _interleaved(
    a: Callable[[], object], b: Callable[[], object], repeat: int
) -> tuple[float, ...]:
    """Best wall-clock seconds of ``a`` and ``b``, run alternately (neither always first)."""
    best = [float("inf"), float("inf")]
    for i in range(repeat):
        for j in (0, 1) if i % 2 == 0 else (1, 0):
            start = time.perf_counter()
            (a, b)[j]()
            best[j] = min(best[j], time.perf_counter() - start)
    return best[0], best[1]


def _format2(text: str) -> str:
    """The document the weekly job stored before the band (format 2: the same fit)."""
    doc = json.loads(text)
    doc.pop("band", None)
    doc["format"] = 2
    return json.dumps(doc)


def _in_band(models: SymbolModels, bars: pd.DataFrame) -> bool:
    band = models.prophet.band if models.prophet is not None else None
    return band is not None and bool(band.lookup(bars.index.as_unit("ns").asi8)[1].all())


def _throughput(source: SyntheticSource, *, n_bars: int, repeat: int) -> list[Figure]:
    """One symbol, ``n_bars`` sessions after its fit: the band covers the first two weeks."""
    bars = source.bars("AAPL", "2019-01-01", "2024-12-31")
    history, batch = bars.iloc[:-n_bars].iloc[-400:], bars.iloc[-n_bars:]
    models = fit_models(history, calendar="XNYS")
    features = build_features(batch, history=history, calendar="XNYS")
    matrix = model_matrix(features)
    forest = models.iforest.estimator

    full, raw = _interleaved(
        lambda: score_bars(
            batch,
            history=history,
            models=models,
            thresholds=DEFAULT_THRESHOLDS,
            calendar="XNYS",
        ),
        lambda: forest.score_samples(matrix),
        repeat,
    )
    return [
        Figure(
            AREA,
            f"scoring throughput, full scorer ({n_bars}-bar batch of one symbol: rules, "
            "features, Isolation Forest, Prophet band for two weeks after the fit and predict "
            "beyond, severity)",
            n_bars / full,
            "bars/s",
            "raw IsolationForest.score_samples on the same feature matrix",
            n_bars / raw,
            goal=0.3,
        )
    ]


def _week(n_symbols: int, *, repeat: int) -> list[Figure]:
    """Production's unit of work inside one band: a week of daily bars of many symbols."""
    universe = _universe(n_symbols, ("equity",))
    source = SyntheticSource(0, universe=universe)
    lo, hi = (pd.Timestamp(d, tz="UTC") for d in _WEEK)
    batches, train, rows = {}, [], []
    for sym in universe:
        bars = source.bars(sym, _HISTORY[0], _WEEK[1])
        history = bars[bars.index < lo]  # the weekly fit: the bars before the week
        week = bars[(bars.index >= lo) & (bars.index <= hi + pd.Timedelta("1D"))]
        models = fit_models(history.iloc[-330:], calendar=sym.calendar)
        if not _in_band(models, week):
            raise RuntimeError(f"{sym.name}: the week is not inside the stored band")
        batches[sym.name] = SymbolBatch(week, models, history=history.iloc[-160:], calendar="XNYS")
        feats = build_features(week, history=history.iloc[-160:], calendar="XNYS")
        rows.append((models.iforest.estimator, model_matrix(feats)))
        train.append(build_features(history.iloc[-330:], calendar="XNYS"))
    n_bars = sum(len(b.bars) for b in batches.values())
    full, raw = _interleaved(
        lambda: score_symbols(batches, thresholds=DEFAULT_THRESHOLDS),
        lambda: [forest.score_samples(x) for forest, x in rows],
        repeat,
    )
    # The same bars with one forest pooled over the class (one score_samples call in all).
    forest = fit_iforest(train, seed=0)
    shared = {
        name: SymbolBatch(b.bars, SymbolModels(forest, b.models.prophet), b.history, "XNYS")
        for name, b in batches.items()
    }
    stacked = np.concatenate([x for _, x in rows])
    full_pooled, raw_pooled = _interleaved(
        lambda: score_symbols(shared, thresholds=DEFAULT_THRESHOLDS),
        lambda: forest.estimator.score_samples(stacked),
        repeat,
    )
    name = (
        f"full scorer throughput, one week of daily bars x {n_symbols} equities "
        f"({n_bars} bars, models of the weekly fit before the week, every bar in the stored "
        "Prophet band; batched path"
    )
    return [
        Figure(
            AREA,
            f"{name}, per-symbol forests as production fits them)",
            n_bars / full,
            "bars/s",
            "raw IsolationForest.score_samples of the same features and models (one call per "
            "symbol's forest)",
            n_bars / raw,
            goal=0.3,
        ),
        Figure(
            AREA,
            f"{name}, one forest pooled over the class)",
            n_bars / full_pooled,
            "bars/s",
            "raw IsolationForest.score_samples of the same features (one call for all)",
            n_bars / raw_pooled,
        ),
    ]


def _daily_batch(n_symbols: int, *, repeat: int) -> list[Figure]:
    universe = _universe(n_symbols)
    source = SyntheticSource(0, universe=universe)
    inputs = {}
    for sym in universe:
        bars = source.bars(sym, _HISTORY[0], _DAY)
        history, today = bars.iloc[:-1], bars.iloc[-1:]
        models = fit_models(history.iloc[-330:], calendar=sym.calendar)  # the weekly fit
        if not _in_band(models, today):
            raise RuntimeError(f"{sym.name}: {_DAY} is not inside the stored band")
        stored = models.prophet.to_json()
        frozen = daily.IForestModel(
            models.iforest.estimator, models.iforest.features, models.iforest.n_train, 0
        )
        inputs[sym.name] = (sym, history.iloc[-160:], today, models, stored, frozen)
    classes = {sym.name: sym.asset_class for sym in universe}
    format2 = {name: _format2(v[4]) for name, v in inputs.items()}

    def batch(with_prophet: bool = True) -> None:
        batches = {
            name: SymbolBatch(
                today,
                SymbolModels(
                    models.iforest, ProphetModels.from_json(stored) if with_prophet else None
                ),
                history=history,
                calendar=sym.calendar,
            )
            for name, (sym, history, today, models, stored, _) in inputs.items()
        }
        mark_market_events(score_symbols(batches, thresholds=DEFAULT_THRESHOLDS), classes)

    def today_code() -> None:  # the frozen per-symbol loop: Prophet predicted every day
        scores = {}
        for name, (sym, history, today, _, _, frozen) in inputs.items():
            prophet = daily.ProphetModels.from_json(format2[name])
            scores[name] = daily.score_bars(
                today,
                history=history,
                models=daily.SymbolModels(frozen, prophet),
                thresholds=daily.DEFAULT_THRESHOLDS,
                calendar=sym.calendar,
            )
        daily.mark_market_events(scores, classes)

    new, old = _interleaved(batch, today_code, repeat)
    iforest_only = timed(lambda: batch(with_prophet=False), repeat=repeat)
    one = next(iter(inputs.values()))
    history_one = pd.concat([one[1], one[2]])
    refit = timed(lambda: fit_models(history_one, calendar=one[0].calendar), repeat=repeat)
    feats = build_features(history_one, calendar=one[0].calendar)
    refit_if = timed(lambda: fit_iforest(feats), repeat=repeat)
    return [
        Figure(
            AREA,
            f"{n_symbols}-symbol daily batch latency (load the stored Prophet JSON, score one "
            "bar each in one batched pass from the stored band, market events); goal "
            f"<= {_DAILY_GOAL_S:g} s absolute, i.e. ratio >= today's seconds / {_DAILY_GOAL_S:g}",
            new,
            "s",
            "today's per-symbol loop (frozen copy: Prophet predict every day), same bars and fits",
            old,
            goal=round(old / _DAILY_GOAL_S, 2),
            higher_is_better=False,
        ),
        Figure(
            AREA,
            f"daily batch latency, {n_symbols} symbols (load Prophet JSON, score one bar each, "
            "market events)",
            new,
            "s",
            "the same batch with the Isolation Forest only (no Prophet)",
            iforest_only,
            higher_is_better=False,
        ),
        Figure(
            AREA,
            "weekly refit of one symbol (Isolation Forest + 2 Prophet fits + the band)",
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
            "Prophet fits + the band)",
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
        quick: Small sizes (seconds) instead of 50 symbols' week, a 100-symbol batch and the
            whole GOOG series (1,898 scored sessions: several minutes).

    Returns:
        The figures.
    """
    source = SyntheticSource(0)
    repeat = 1 if quick else 3
    figures = _throughput(source, n_bars=60 if quick else 250, repeat=repeat)
    figures += _week(10 if quick else 50, repeat=repeat)
    figures += _daily_batch(10 if quick else 100, repeat=repeat)
    figures += _real_series(n_bars=60 if quick else None)
    return figures
