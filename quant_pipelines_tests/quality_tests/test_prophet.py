"""Prophet models: small fits, JSON round trip, deterministic and fast prediction."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.marketdata.calendars import bar_times, session_fractions
from quant_pipelines.quality import ProphetModels, fit_prophet


@pytest.fixture(scope="module")
def models(aapl: pd.DataFrame) -> ProphetModels:
    return fit_prophet(aapl.iloc[:200], seed=0, uncertainty_samples=100)


def test_json_round_trip_scores_identically(models: ProphetModels, aapl: pd.DataFrame) -> None:
    text = models.to_json()
    doc = json.loads(text)
    assert doc["format"] == 3 and doc["n_train"] == 200
    assert [entry[:2] for entry in doc["intervals"]] == [["price", 0], ["volume", 0]]
    loaded = ProphetModels.from_json(text)
    assert loaded.fitted_through == aapl.index[199]
    new = aapl.iloc[200:210]
    pd.testing.assert_frame_equal(loaded.score(new, seed=3), models.score(new, seed=3))


def test_scoring_is_deterministic_and_leaves_numpy_state_alone(
    models: ProphetModels, aapl: pd.DataFrame
) -> None:
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    first = models.score(aapl.iloc[200:205], seed=1)
    assert np.random.random() == before
    pd.testing.assert_frame_equal(first, models.score(aapl.iloc[200:205], seed=1))


def test_distance_is_zero_inside_and_grows_outside(
    models: ProphetModels, aapl: pd.DataFrame
) -> None:
    bars = aapl.iloc[200:203].copy()
    fitted = models.score(aapl.iloc[150:200])
    assert (fitted["prophet"] >= 0).all()
    assert (fitted["prophet_price"] == 0).mean() > 0.8  # in sample: mostly inside
    bars.iloc[1, :4] *= 1.6
    bars.iloc[2, 4] *= 50
    scored = models.score(bars)
    assert scored["prophet_price"].iloc[1] > 1
    assert scored["prophet_volume"].iloc[2] > 1
    assert (scored["prophet"] == scored[["prophet_price", "prophet_volume"]].max(axis=1)).all()


def test_prediction_only_is_fast(models: ProphetModels, aapl: pd.DataFrame) -> None:
    loaded = ProphetModels.from_json(models.to_json())
    start = time.perf_counter()
    for i in range(5):
        loaded.score(aapl.iloc[200 + i : 201 + i])
    assert (time.perf_counter() - start) / 5 < 0.5


def test_non_positive_and_duplicate_rows(models: ProphetModels, aapl: pd.DataFrame) -> None:
    bars = pd.concat([aapl.iloc[200:202], aapl.iloc[201:203]])
    bars.iloc[0, 3] = -1.0
    scored = models.score(bars)
    assert scored.index.equals(bars.index)
    assert scored["prophet_price"].iloc[0] == 0.0
    assert scored.iloc[1].equals(scored.iloc[2])


def test_excluded_bars_are_left_out(aapl: pd.DataFrame) -> None:
    fitted = fit_prophet(aapl.iloc[:60], exclude=aapl.index[10:20], uncertainty_samples=20)
    assert fitted.n_train == 50


def test_version_1_documents_are_still_read(models: ProphetModels, aapl: pd.DataFrame) -> None:
    doc = json.loads(models.to_json())
    doc["format"] = 1
    del doc["calendar"], doc["freq"], doc["intervals"]
    old = ProphetModels.from_json(json.dumps(doc))
    assert old.calendar is None
    pd.testing.assert_frame_equal(old.score(aapl.iloc[200:203]), models.score(aapl.iloc[200:203]))


def test_a_bar_scores_the_same_alone_or_in_any_batch(
    models: ProphetModels, aapl: pd.DataFrame
) -> None:
    batch = aapl.iloc[200:215]
    together = models.score(batch, seed=2)
    for i in (0, 7, 14):
        pd.testing.assert_frame_equal(
            models.score(batch.iloc[i : i + 1], seed=2), together.iloc[i : i + 1]
        )
    pd.testing.assert_frame_equal(models.score(batch.iloc[::-1], seed=2), together.iloc[::-1])


def test_volume_model_scales_early_closes() -> None:
    times = bar_times("XNYS", "2022-06-01", "2022-12-30")
    rng = np.random.default_rng(4)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, len(times))))
    fraction = session_fractions("XNYS", times)
    volume = 1e6 * np.exp(rng.normal(0, 0.05, len(times))) * fraction  # half-days trade half
    bars = pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close},
        index=times,
    ).assign(volume=volume)
    early = np.flatnonzero(fraction < 1)[0]  # 2022-11-25, a 13:00 close
    fitted = fit_prophet(bars.iloc[:early], calendar="XNYS", uncertainty_samples=50)
    day = bars.iloc[early : early + 1]
    assert fitted.score(day)["prophet_volume"].iloc[0] == 0.0
    assert fitted.score(day, session_fraction=np.ones(1))["prophet_volume"].iloc[0] > 1.0
    unscaled = fit_prophet(bars.iloc[:early], uncertainty_samples=50)  # no calendar
    assert unscaled.score(day)["prophet_volume"].iloc[0] > 1.0


def test_unknown_format_is_rejected(models: ProphetModels) -> None:
    doc = json.loads(models.to_json())
    doc["format"] = 99
    with pytest.raises(ValueError, match="format"):
        ProphetModels.from_json(json.dumps(doc))
