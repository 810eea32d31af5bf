"""The forecast band stored at the weekly fit: same scores as predicting, JSON, old formats."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quant_pipelines.bench import _legacy_daily as frozen
from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.marketdata.calendars import bar_times
from quant_pipelines.quality import ProphetModels, fit_prophet
from quant_pipelines.quality._band import BAND_HORIZON, BAND_MAX_STEPS

SEED = 4
FITTED = {"XNYS": ("AAPL", "equity"), "24/7": ("BTCUSD", "crypto"), None: ("SPY", "equity")}


@pytest.fixture(scope="module")
def fitted(source: SyntheticSource) -> dict[str | None, tuple[ProphetModels, pd.DataFrame]]:
    """Per calendar (None: no calendar), models fitted on 2023 and the bars after the fit."""
    out = {}
    for calendar, (symbol, _) in FITTED.items():
        bars = source.bars(symbol, "2023-01-01", "2024-03-31")
        train = bars[bars.index < pd.Timestamp("2023-12-01", tz="UTC")]
        models = fit_prophet(train, seed=SEED, calendar=calendar, uncertainty_samples=60)
        out[calendar] = (models, bars[bars.index > train.index[-1]])
    return out


def _format2(models: ProphetModels) -> str:
    doc = json.loads(models.to_json())
    del doc["band"]
    doc["format"] = 2
    return json.dumps(doc)


@pytest.mark.parametrize("calendar", list(FITTED), ids=["xnys", "crypto", "no_calendar"])
def test_the_band_covers_the_sessions_until_the_next_fit(fitted, calendar) -> None:
    models, _ = fitted[calendar]
    band = models.band
    last = pd.Timestamp(models.fitted_through)
    assert band is not None and band.seed == SEED
    stamps = pd.DatetimeIndex(band.stamps, tz="UTC")
    assert stamps[0] > last and stamps[-1] <= last + BAND_HORIZON
    if calendar is None:  # the training spacing: one bar a day
        assert (np.diff(band.stamps) == pd.Timedelta("1D").value).all()
    else:  # exactly the calendar's bars (holidays left out, Christmas week for XNYS)
        first, end = last.normalize().tz_convert(None), stamps[-1].tz_convert(None)
        expected = bar_times(calendar, first, end)
        assert stamps.equals(expected[expected > last].rename(None))
    assert band.price.shape == (3, len(stamps)) and band.volume.shape == (3, len(stamps))
    assert (band.price[1] < band.price[0]).all() and (band.price[0] < band.price[2]).all()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    calendar=st.sampled_from(list(FITTED)),
    picks=st.lists(st.integers(0, 40), min_size=1, max_size=12),
    scale=st.floats(0.5, 2.0),
)
def test_band_scores_equal_predict_scores_bit_for_bit(fitted, calendar, picks, scale) -> None:
    """Any bars after the fit, in the band or beyond it, in any order, duplicates included."""
    models, after = fitted[calendar]
    bars = after.iloc[[p % len(after) for p in picks]].copy()
    bars[["open", "high", "low", "close"]] *= scale  # far outside the band for some
    looked_up = models.score(bars, seed=SEED)
    predicted = models.score(bars, seed=SEED, use_band=False)
    pd.testing.assert_frame_equal(looked_up, predicted, check_exact=True)
    assert looked_up.index.equals(bars.index)


@pytest.mark.parametrize("calendar", list(FITTED), ids=["xnys", "crypto", "no_calendar"])
def test_bars_beyond_the_band_score_as_before(fitted, calendar) -> None:
    """Beyond the horizon (and with another seed) the scores are today's predict path."""
    models, after = fitted[calendar]
    hits = models.band.lookup(after.index.asi8)[1]
    assert hits.any() and not hits.all()  # the fixture spans the band and beyond it
    before = frozen.ProphetModels.from_json(_format2(models))
    for seed in (SEED, SEED + 1):
        pd.testing.assert_frame_equal(
            models.score(after, seed=seed), before.score(after, seed=seed), check_exact=True
        )


def test_json_round_trip_keeps_the_band_and_the_scores(fitted) -> None:
    models, after = fitted["XNYS"]
    doc = json.loads(models.to_json())
    assert doc["format"] == 3 and doc["band"]["seed"] == SEED
    loaded = ProphetModels.from_json(models.to_json())
    for name in ("stamps", "price", "volume"):
        assert np.array_equal(getattr(loaded.band, name), getattr(models.band, name))
    assert loaded.to_json() == models.to_json()  # reading and writing again changes nothing
    pd.testing.assert_frame_equal(
        loaded.score(after, seed=SEED), models.score(after, seed=SEED), check_exact=True
    )


def test_in_band_scoring_never_rebuilds_the_prophet_models(fitted) -> None:
    """Reading a stored document only parses Prophet's JSON when a bar needs predicting."""
    models, after = fitted["XNYS"]
    doc = json.loads(models.to_json())
    doc["price"] = doc["volume"] = "not prophet json"
    broken = ProphetModels.from_json(json.dumps(doc))
    in_band = after[models.band.lookup(after.index.asi8)[1]]
    pd.testing.assert_frame_equal(
        broken.score(in_band, seed=SEED), models.score(in_band, seed=SEED), check_exact=True
    )
    with pytest.raises(ValueError):
        broken.score(after, seed=SEED)  # beyond the band: Prophet is needed


@pytest.mark.parametrize("fmt", [1, 2])
def test_older_formats_are_read_and_fall_back_to_predict(fitted, fmt) -> None:
    models, after = fitted["XNYS"]
    doc = json.loads(_format2(models))
    doc["format"] = fmt
    if fmt == 1:
        del doc["calendar"], doc["freq"]
    old = ProphetModels.from_json(json.dumps(doc))
    assert old.band is None
    pd.testing.assert_frame_equal(
        old.score(after, seed=SEED, session_fraction=np.ones(len(after))),
        models.score(after, seed=SEED, session_fraction=np.ones(len(after))),
        check_exact=True,
    )


@pytest.mark.parametrize(("freq", "steps"), [("1h", 336), ("15min", BAND_MAX_STEPS)])
def test_intraday_bands_are_capped_and_stay_small(freq: str, steps: int) -> None:
    times = bar_times("24/7", "2024-01-01", "2024-01-20", freq=freq)[:300]
    rng = np.random.default_rng(1)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, len(times))))
    bars = pd.DataFrame(
        {"open": close, "high": close * 1.001, "low": close * 0.999, "close": close},
        index=times,
    ).assign(volume=1e4 * np.exp(rng.normal(0, 0.1, len(times))))
    models = fit_prophet(bars, calendar="24/7", freq=freq, uncertainty_samples=20)
    assert len(models.band.stamps) == steps  # two weeks of hourly bars; 15-minute bars capped
    with_band = len(models.to_json())
    without = len(_format2(models))
    assert with_band - without < 80_000  # at most ~75 kB of base64 on top of the models


def test_daily_bars_stamped_at_midnight_get_a_band_of_session_dates(aapl: pd.DataFrame) -> None:
    """Vendors' files often stamp daily bars at midnight UTC: the band follows the history."""
    bars = aapl.copy()
    bars.index = bars.index.normalize()
    models = fit_prophet(bars.iloc[:200], calendar="XNYS", uncertainty_samples=30)
    after = bars.iloc[200:215]
    hits = models.band.lookup(after.index.asi8)[1]
    assert hits[:9].all() and not hits[-3:].any()  # two weeks of sessions, then beyond
    pd.testing.assert_frame_equal(
        models.score(after), models.score(after, use_band=False), check_exact=True
    )
