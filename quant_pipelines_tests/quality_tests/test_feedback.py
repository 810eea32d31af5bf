"""Analyst feedback closes the loop, across a recalibration, against the real MongoDB test server.

GOOG's real daily bars: the sessions 0-499 are the history of a first calibration, 500-749 are
scored (period P), 750-999 are the next period (Q). Analysts review P's warnings in MongoDB
(``storage.anomaly_workflow``): they confirm one and mark the rest false positive. The weekly
jobs then recalibrate on sessions 0-749 and rescore Q, reading the analysts' statuses back from
MongoDB: false positives leave the models' training windows (``exclude``), the confirmed
anomaly leaves the calibration's clean sample (``anomalies``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pymongo.database import Database

from quant_pipelines.marketdata.calendars import session_bounds
from quant_pipelines.quality import build_features, calibrate, calibrate_thresholds, fit_models
from quant_pipelines.quality.calibration import walk_forward_scores
from quant_pipelines.quality.severity import Thresholds
from quant_pipelines.services.calibration import recalibrate
from quant_pipelines.storage import quality as qstore
from quant_pipelines.storage.anomaly_workflow import transition
from quant_pipelines_tests._bars import goog_bars

pytestmark = pytest.mark.slow

SYMBOL, CAL = "GOOG", "XNYS"
HISTORY, PERIOD, NEXT = 500, 750, 1000


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    """GOOG's first 1,000 sessions at the XNYS session opens."""
    bars = goog_bars().iloc[:NEXT]
    opens, _ = session_bounds(CAL, bars.index.tz_convert(None))
    bars.index = pd.DatetimeIndex(opens, name="ts")
    return bars


def _recalibrate(db: Database, bars: pd.DataFrame) -> tuple[Thresholds, pd.DataFrame]:
    """The weekly recalibration (the ``anomaly_thresholds`` asset's service) on sessions 0-749
    with the statuses in MongoDB."""
    report = recalibrate(db, {SYMBOL: (bars.iloc[:PERIOD], CAL)}, calibration_bars=PERIOD - 250)
    assert report.symbols == [SYMBOL] and report.scores.index[0] == bars.index[250]
    return report.thresholds, report.scores


def _score_next(db: Database, bars: pd.DataFrame, thresholds: Thresholds) -> pd.DataFrame:
    """Period Q replayed as production runs it (refit weekly, false positives excluded)."""
    exclude = qstore.false_positive_times(db, SYMBOL)
    return walk_forward_scores(
        bars, start=PERIOD, batch=5, thresholds=thresholds, calendar=CAL, exclude=exclude
    )


def _warning_rate(scores: pd.DataFrame) -> float:
    return float((scores["severity"] != "info").mean())


def test_false_positives_leave_training_and_do_not_raise_the_warning_rate(
    mongo_db: Database, bars: pd.DataFrame
) -> None:
    first = calibrate(bars.iloc[:HISTORY], refit_every=20, batch=20, calendar=CAL)
    scored = walk_forward_scores(
        bars.iloc[:PERIOD], start=HISTORY, batch=5, thresholds=first, calendar=CAL
    )
    warned = scored[scored["severity"] == "warning"]
    assert len(warned) >= 3, "period P needs warnings for the analysts to review"
    docs = qstore.upsert_anomalies(
        mongo_db,
        [
            {"symbol": SYMBOL, "ts": ts, "detector": "statistical", "severity": "warning"}
            | {"kind": row["kind"], "iforest": float(row["iforest"])}
            for ts, row in warned.iterrows()
        ],
    )
    before, replay_before = _recalibrate(mongo_db, bars)
    rate_before = _warning_rate(_score_next(mongo_db, bars, before))

    docs.sort(key=lambda d: d["ts"])
    transition(mongo_db, docs[0]["_id"], "resolve", actor="analyst")  # a real anomaly
    for doc in docs[1:]:
        transition(mongo_db, doc["_id"], "false_positive", actor="analyst", note="market move")
    false_pos = qstore.false_positive_times(mongo_db, SYMBOL)
    confirmed = qstore.confirmed_times(mongo_db, SYMBOL)
    assert len(false_pos) == len(docs) - 1 and len(confirmed) == 1

    after, replay_after = _recalibrate(mongo_db, bars)
    rate_after = _warning_rate(_score_next(mongo_db, bars, after))
    print(
        f"\nwarning rate on the next {NEXT - PERIOD} sessions: {rate_before:.2%} before, "
        f"{rate_after:.2%} after {len(false_pos)} false positives were marked"
    )
    assert rate_after <= rate_before

    # the confirmed anomaly left the clean sample of the calibration (and only it)
    assert (
        confirmed.isin(replay_before.index).all() and not confirmed.isin(replay_after.index).any()
    )
    clean = replay_before.loc[confirmed, "rules"].map(len) == 0
    assert after.n_bars == before.n_bars - int(clean.sum())
    assert before.n_bars == calibrate_thresholds(replay_before).n_bars

    # the false positives left the training window of the next refit
    history = bars.iloc[:PERIOD]
    plain = fit_models(history, calendar=CAL)
    marked = fit_models(history, calendar=CAL, exclude=false_pos)
    trained_plain = pd.DatetimeIndex(plain.prophet.price.history["ds"]).tz_localize("UTC")
    trained_marked = pd.DatetimeIndex(marked.prophet.price.history["ds"]).tz_localize("UTC")
    in_window = false_pos[false_pos >= trained_marked.min()]
    assert len(in_window) >= 2
    assert in_window.isin(trained_plain).all()
    assert not false_pos.isin(trained_marked).any()
    assert len(trained_marked) == len(trained_plain)  # the window reaches further back
    # the forest, trained without them, finds them more isolated (it learnt them otherwise)
    features = build_features(history, calendar=CAL)
    rows = features.index.get_indexer(false_pos)
    assert np.all(rows >= 0)
    assert marked.iforest.score(features)[rows].mean() > plain.iforest.score(features)[rows].mean()
