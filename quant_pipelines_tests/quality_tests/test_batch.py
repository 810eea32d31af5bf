"""The batched daily path: the same scores as one symbol at a time, and as the frozen scorer.

``quant_pipelines.bench._legacy_daily`` is the scorer as committed before the band and the
batched pass; it is the oracle that the faster code changed no score, bit for bit.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import IsolationForest

from quant_pipelines.bench import _legacy_daily as frozen
from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.marketdata.schema import BarSchemaError
from quant_pipelines.quality import (
    ModelSchedule,
    SymbolBatch,
    SymbolModels,
    fit_iforest,
    fit_models,
    fit_schedule,
    mark_market_events,
    score_bars,
    score_symbols,
)
from quant_pipelines.quality._forest import forest_scores
from quant_pipelines.quality._prepare import OffCalendarError
from quant_pipelines.quality._robust import nanmedian_rows
from quant_pipelines.quality.features import build_features
from quant_pipelines_tests.quality_tests.conftest import make_bars

pytestmark = pytest.mark.slow

SYMBOLS = {"AAPL": "XNYS", "MSFT": "XNYS", "SPY": "XNYS", "BTCUSD": "24/7", "EURUSD": "24/5"}
CLASSES = {"AAPL": "equity", "MSFT": "equity", "SPY": "equity", "BTCUSD": "crypto"}
FIT_BEFORE = pd.Timestamp("2023-06-05", tz="UTC")  # a Monday: the week's models


@pytest.fixture(scope="module")
def universe(source: SyntheticSource) -> dict[str, tuple[pd.DataFrame, str, SymbolModels]]:
    """Bars to mid-2023 with planted errors after the fit, and each symbol's weekly models."""
    out = {}
    for i, (name, calendar) in enumerate(SYMBOLS.items()):
        bars = source.bars(name, "2022-03-01", "2023-07-15").copy()
        after = np.flatnonzero(bars.index >= FIT_BEFORE)
        bars.iloc[after[2 + i], :4] *= 1.3  # a spike
        bars.iloc[after[6], 4] *= 40.0  # a volume burst
        bars.iloc[after[9] : after[9] + 6, :4] = bars["close"].iloc[after[9]]  # a stale run
        bars = pd.concat([bars, bars.iloc[[after[12]]]])  # a duplicate row
        models = fit_models(bars[bars.index < FIT_BEFORE].iloc[-330:], calendar=calendar, seed=2)
        out[name] = (bars, calendar, models)
    return out


def _split(bars: pd.DataFrame, start: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    return bars[bars.index >= start], bars[bars.index < start]


@pytest.mark.parametrize("days", [1, 5, 30], ids=["one_bar", "one_week", "six_weeks"])
def test_batched_scores_equal_per_symbol_scores_bit_for_bit(universe, days: int) -> None:
    """One pass over every symbol (one shared pooled forest for two of them) == one call each."""
    pooled = fit_iforest(
        [build_features(universe[s][0].iloc[:250], calendar="XNYS") for s in ("MSFT", "SPY")]
    )
    batches = {}
    for name, (bars, calendar, models) in universe.items():
        if name in ("MSFT", "SPY"):
            models = SymbolModels(pooled, models.prophet)
        start = bars.index[bars.index >= FIT_BEFORE][0] + pd.Timedelta(days=days // 2)
        batch, history = _split(bars[bars.index < start + pd.Timedelta(days=days)], start)
        batches[name] = SymbolBatch(batch, models, history=history, calendar=calendar)
    together = score_symbols(batches, seed=2)
    assert list(together) == list(batches)
    for name, b in batches.items():
        alone = score_bars(b.bars, history=b.history, models=b.models, calendar=b.calendar, seed=2)
        pd.testing.assert_frame_equal(together[name], alone, check_exact=True)
    assert sum(len(f) for f in together.values()) >= len(batches) * days * 0.6


def _frozen_models(models: SymbolModels) -> frozen.SymbolModels:
    doc = json.loads(models.prophet.to_json())
    del doc["band"]
    doc["format"] = 2  # what the weekly job stored before the band
    forest = models.iforest
    return frozen.SymbolModels(
        frozen.IForestModel(forest.estimator, forest.features, forest.n_train, forest.seed),
        frozen.ProphetModels.from_json(json.dumps(doc)),
    )


@pytest.mark.parametrize("name", list(SYMBOLS))
def test_scores_equal_the_frozen_scorer_bit_for_bit(universe, name: str) -> None:
    """Band hits and misses, spikes, stale runs, duplicates: nothing changed a score."""
    bars, calendar, models = universe[name]
    batch, history = _split(bars, FIT_BEFORE)
    assert models.prophet.band.lookup(batch.index.asi8)[1].any()  # some bars in the band
    new = score_bars(batch, history=history, models=models, calendar=calendar, seed=2)
    old = frozen.score_bars(
        batch, history=history, models=_frozen_models(models), calendar=calendar, seed=2
    )
    pd.testing.assert_frame_equal(new, old, check_exact=True)
    assert (new["severity"] != "info").any()


def test_market_events_equal_the_frozen_ones(universe) -> None:
    scores = {}
    for name in CLASSES:
        bars, calendar, models = universe[name]
        batch, history = _split(bars, FIT_BEFORE)
        batch = batch.copy()
        batch.iloc[20, :4] *= 0.8  # the class falls together on one day...
        scores[name] = score_bars(batch, history=history, models=models, calendar=calendar)
    new, old = mark_market_events(scores, CLASSES), frozen.mark_market_events(scores, CLASSES)
    for name in scores:
        pd.testing.assert_frame_equal(new[name], old[name], check_exact=True)


def test_fitting_inside_and_schedules_equal_the_frozen_scorer() -> None:
    """No calendar, models fitted inside ``score_bars`` on a weekly schedule."""
    bars = make_bars(240, seed=5)
    bars.iloc[230, :4] *= 1.5
    batch, history = bars.iloc[226:], bars.iloc[:226]  # two weekly periods to fit
    new = score_bars(batch, history=history, seed=1)
    old = frozen.score_bars(batch, history=history, seed=1)
    pd.testing.assert_frame_equal(new, old, check_exact=True)
    schedule = fit_schedule(bars, start=bars.index[226], with_prophet=False, seed=1)
    assert isinstance(schedule, ModelSchedule) and len(schedule.starts) >= 2
    frozen_schedule = frozen.fit_schedule(bars, start=bars.index[226], with_prophet=False, seed=1)
    pd.testing.assert_frame_equal(
        score_symbols({"X": SymbolBatch(batch, schedule, history=history)}, seed=1)["X"],
        frozen.score_bars(batch, history=history, models=frozen_schedule, seed=1),
        check_exact=True,
    )


def test_bad_input_names_the_symbol(universe) -> None:
    bars, calendar, models = universe["AAPL"]
    good = SymbolBatch(bars.iloc[-3:], models, history=bars.iloc[:-3], calendar=calendar)
    broken = SymbolBatch(bars.iloc[-3:].drop(columns="volume"), models, calendar=calendar)
    with pytest.raises(BarSchemaError, match=r"symbol 'BROKEN'.*volume"):
        score_symbols({"AAPL": good, "BROKEN": broken})
    weekend = SymbolBatch(universe["BTCUSD"][0].iloc[-3:], models, calendar="XNYS")
    with pytest.raises(OffCalendarError, match="symbol 'WEEKEND'"):
        score_symbols({"AAPL": good, "WEEKEND": weekend})


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@settings(max_examples=15, deadline=None)
@given(
    rows=st.integers(0, 40),
    spread=st.sampled_from([1.0, 10.0, 1e6]),
    extreme=st.booleans(),
    seed=st.integers(0, 3),
)
def test_vectorised_forest_equals_score_samples_bit_for_bit(rows, spread, extreme, seed) -> None:
    rng = np.random.default_rng(seed)
    train = np.abs(rng.standard_t(3, size=(120, 3)))
    forests = [
        IsolationForest(n_estimators=30, max_samples=64, random_state=seed).fit(train),
        IsolationForest(n_estimators=20, max_features=0.67, random_state=seed).fit(train),
    ]
    x = np.abs(rng.standard_t(2, size=(rows, 3))) * spread
    if extreme and rows:
        x[0] = [0.0, np.nan, 1.7e308]  # NaN goes by the node's missing-value side; inf in f32
    for forest, got in zip(forests, forest_scores([(f, x) for f in forests]), strict=True):
        expected = -forest.score_samples(x) if rows else np.zeros(0)
        assert np.array_equal(got.view(np.int64), expected.view(np.int64))


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            st.floats(allow_nan=True, allow_infinity=True, width=64),
            st.sampled_from([0.0, -0.0, 1.0, -1.0]),
        ),
        min_size=1,
        max_size=80,
    ),
    window=st.sampled_from([1, 2, 5, 60]),
)
def test_fast_nanmedian_equals_numpy_bit_for_bit(values: list[float], window: int) -> None:
    x = np.concatenate([np.full(window - 1, np.nan), np.array(values)])
    view = np.lib.stride_tricks.sliding_window_view(x, window)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN and inf - inf windows
        expected = np.nanmedian(view, axis=1)
    got = nanmedian_rows(view)
    same = (got.view(np.int64) == expected.view(np.int64)) | (np.isnan(got) & np.isnan(expected))
    assert same.all()
