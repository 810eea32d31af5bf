"""Calibration: target alert rates per severity, clean sample, versions, walk-forward replay."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.quality import (
    CalibrationTargets,
    calibrate,
    calibrate_thresholds,
    fit_models,
    score_bars,
    walk_forward_scores,
)
from quant_pipelines.quality.calibration import MARGINS
from quant_pipelines.quality.severity import statistical_level


def fake_scores(n: int = 4000, *, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2020-01-01", periods=n, freq="D", tz="UTC", name="ts")
    return pd.DataFrame(
        {
            "iforest": rng.beta(8, 10, n),
            "prophet_price": np.maximum(rng.normal(0, 0.5, n), 0),
            "prophet_volume": np.maximum(rng.normal(-0.3, 0.2, n), 0),
            "rules": [[] for _ in range(n)],
            "warmup": np.zeros(n, dtype=bool),
        },
        index=index,
    )


def rates(scores: pd.DataFrame, thresholds) -> tuple[float, float]:
    level = statistical_level(
        scores["iforest"], scores["prophet_price"], scores["prophet_volume"], thresholds
    )
    return float(np.mean(level >= 1)), float(np.mean(level == 2))


@pytest.mark.parametrize(("warning", "critical"), [(0.02, 0.002), (0.05, 0.005), (0.01, 0.001)])
def test_targets_are_met_on_the_sample(warning: float, critical: float) -> None:
    scores = fake_scores()
    t = calibrate_thresholds(scores, targets=CalibrationTargets(warning, critical))
    warn_rate, crit_rate = rates(scores, t)
    assert 0.5 * warning <= warn_rate <= warning
    assert crit_rate <= critical
    for name, margin in MARGINS.items():
        assert getattr(t, f"{name}_critical") >= getattr(t, f"{name}_warning") + margin - 1e-9
    assert t.n_bars == len(scores) and t.warning_rate == warning


def test_rule_breakers_warmup_and_known_anomalies_leave_the_sample() -> None:
    scores = fake_scores()
    base = calibrate_thresholds(scores)
    dirty = scores.copy()
    dirty.iloc[:40, :3] = [0.95, 9.0, 9.0]
    dirty.iloc[:10, dirty.columns.get_loc("rules")] = pd.Series([["stale_price"]] * 10).values
    dirty.iloc[10:20, dirty.columns.get_loc("warmup")] = True
    t = calibrate_thresholds(dirty, anomalies=dirty.index[20:40])
    same = calibrate_thresholds(scores.iloc[40:])
    assert t.n_bars == len(scores) - 40
    assert (t.iforest_warning, t.prophet_price_warning) == (
        same.iforest_warning,
        same.prophet_price_warning,
    )
    assert calibrate_thresholds(dirty).iforest_critical > base.iforest_critical


def test_version_is_dated_and_content_addressed() -> None:
    scores = fake_scores()
    a = calibrate_thresholds(scores)
    assert a.version == calibrate_thresholds(scores).version
    assert a.version.startswith(f"{scores.index[-1]:%Y%m%d}-")
    assert calibrate_thresholds(fake_scores(seed=1)).version != a.version
    assert calibrate_thresholds(scores, as_of=pd.Timestamp("2031-05-02")).version.startswith(
        "20310502-"
    )


def test_too_few_clean_bars_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least 100 clean"):
        calibrate_thresholds(fake_scores(50))


def test_false_positives_leave_the_training_window(aapl: pd.DataFrame) -> None:
    history = aapl.iloc[:200]
    marked = history.index[100:110]
    full = fit_models(history, calendar="XNYS")
    fewer = fit_models(history, calendar="XNYS", exclude=marked)
    assert fewer.iforest.n_train == full.iforest.n_train - 10
    assert fewer.prophet.n_train == full.prophet.n_train - 10


@pytest.mark.slow
def test_walk_forward_replays_prediction_only_scoring(aapl: pd.DataFrame) -> None:
    scores = walk_forward_scores(aapl, start=200, refit_every=40, batch=20, seed=1)
    assert scores.index.equals(aapl.index[200:])
    models = fit_models(aapl.iloc[:200], seed=1, window=250)
    first = score_bars(aapl.iloc[200:240], history=aapl.iloc[:200], models=models, seed=1)
    pd.testing.assert_frame_equal(scores.iloc[:40], first)
    later = fit_models(aapl, seed=1, before=aapl.index[240])
    second = score_bars(aapl.iloc[240:280], history=aapl.iloc[:240], models=later, seed=1)
    pd.testing.assert_frame_equal(scores.iloc[40:80], second)


@pytest.mark.slow
def test_walk_forward_weekly_refits(aapl: pd.DataFrame) -> None:
    scores = walk_forward_scores(
        aapl, start=250, refit_every="W", batch=3, seed=1, with_prophet=False
    )
    monday = aapl.index[aapl.index.day_of_week == 0]
    week = monday[monday > aapl.index[255]][0]
    models = fit_models(aapl, seed=1, before=week.normalize(), with_prophet=False)
    rows = (aapl.index >= week) & (aapl.index < week + pd.Timedelta("5D"))
    expected = score_bars(aapl[rows], history=aapl[aapl.index < week], models=models, seed=1)
    pd.testing.assert_frame_equal(scores[rows[250:]], expected)


@pytest.mark.slow
def test_calibrate_end_to_end(aapl: pd.DataFrame) -> None:
    t = calibrate(aapl, train_window=120, refit_every=30, batch=30, calendar="XNYS")
    assert t.n_bars >= 100
    assert 0.5 <= t.iforest_warning < t.iforest_critical <= 1.0
    assert t.version.startswith(f"{aapl.index[-1]:%Y%m%d}-")
