"""Regime labels against market history: the reference dating, the figures and the goals."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.cli import main
from quant_pipelines.signals import realized_volatility
from quant_pipelines.signals.evaluation import (
    bull_bear_dating,
    evaluate_regimes,
    load_series,
    mean_run_length,
    turn_lags,
    volatility_reference,
)
from quant_pipelines_tests._bars import goog_bars


def _series(values: list[float]) -> pd.Series:
    return pd.Series(values, index=pd.date_range("2024-01-01", periods=len(values), tz="UTC"))


def test_dating_on_hand_built_series() -> None:
    close = _series([100, 110, 118, 100, 90, 95, 80, 100, 110, 90, 130])
    dating = bull_bear_dating(close)
    # 118 (bar 2) is a peak once 90 <= 0.8 * 118 (bar 4); 80 (bar 6) is a trough once
    # 100 >= 1.2 * 80 (bar 7); 110 -> 90 is only an 18% fall, so the bull market runs on.
    assert dating.tolist() == ["bull"] * 3 + ["bear"] * 4 + ["bull"] * 4
    assert dating.index.equals(close.index)
    # With a 35% bear threshold no fall counts: the first event is the rise from bar 6.
    assert bull_bear_dating(close, down=0.35).tolist() == ["bear"] * 7 + ["bull"] * 4
    # 80 -> 100 is exactly 25%, so up=0.25 dates the same; with up=0.65 no rise from 80
    # (at most 62.5%) confirms the trough and the bear market lasts to the end.
    assert bull_bear_dating(close, up=0.25).tolist() == dating.tolist()
    assert bull_bear_dating(close, up=0.65).tolist() == ["bull"] * 3 + ["bear"] * 8
    # Exactly 20% up from the first close (bar 2 = 120) makes bar 0 the first trough.
    early = bull_bear_dating(close.where(close.index != close.index[2], 120.0))
    assert early.tolist() == ["bear"] + ["bull"] * 2 + ["bear"] * 4 + ["bull"] * 4


def test_dating_without_a_big_move_and_ties() -> None:
    assert set(bull_bear_dating(_series([100, 105, 101, 110]))) == {"bull"}
    assert set(bull_bear_dating(_series([100, 95, 99, 90]))) == {"bear"}
    # Two equal peaks: the earlier one is the turning point.
    tie = bull_bear_dating(_series([100, 125, 110, 125, 95, 120]))
    assert tie.tolist() == ["bear"] + ["bull"] + ["bear"] * 3 + ["bull"]
    assert bull_bear_dating(_series([])).empty
    with pytest.raises(ValueError, match="down"):
        bull_bear_dating(_series([1.0, 2.0]), down=1.0)


def test_volatility_reference_is_the_top_quintile() -> None:
    rng = np.random.default_rng(7)
    r = rng.normal(0, np.r_[np.full(200, 0.01), np.full(60, 0.04), np.full(140, 0.01)])
    close = _series(list(100 * np.exp(np.cumsum(r))))
    ref = volatility_reference(close)
    rv = realized_volatility(close, 21)
    assert ref.iloc[:21].isna().all() and ref.iloc[21:].notna().all()
    turbulent = ref == "turbulent"
    assert turbulent.sum() == pytest.approx(0.2 * rv.notna().sum(), abs=1)
    assert rv[turbulent].min() >= rv[ref == "calm"].max()
    assert turbulent.iloc[200:280].mean() > 0.8  # the loud stretch (plus its 21-bar tail)


def test_turn_lags_and_run_length() -> None:
    dating = np.array(["bull"] * 5 + ["bear"] * 5 + ["bull"] * 5, dtype=object)
    label = np.array(["up"] * 7 + ["down"] * 5 + ["up"] * 3, dtype=object)
    assert turn_lags(label, dating).tolist() == [2.0, 2.0]
    never_down = np.array(["up"] * 15, dtype=object)
    assert turn_lags(never_down, dating).tolist() == [math.inf, 0.0]
    assert mean_run_length(np.array(list("aabbba"), dtype=object)) == 2.0


def test_lag_allowance_matches_a_delayed_label() -> None:
    """A label that is the dating delayed by 5 bars scores 1.0 at L=5 and has lag 5."""

    def delayed(bars: pd.DataFrame) -> pd.DataFrame:
        ref = bull_bear_dating(bars["close"]).map({"bull": "up", "bear": "down"})
        trend = ref.shift(5).fillna("range")
        return pd.DataFrame({"trend": trend, "volatility": "calm"}, index=bars.index)

    report = evaluate_regimes({"GOOG": goog_bars()}, labeler=delayed)
    assert report.best_lag == 5
    assert report.best_balanced_accuracy == 1.0
    assert report.trend_balanced_accuracy_lag0 < 0.99
    assert report.trend_balanced_accuracy < 0.99  # at L = 20 the label is 15 bars early
    assert report.median_lag == 5.0 and report.missed_turns == 0


def test_constant_labels_score_one_half() -> None:
    """Always up and calm: plain volatility agreement is about 0.8, balanced accuracy 0.5."""

    def constant(bars: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"trend": "up", "volatility": "calm"}, index=bars.index)

    report = evaluate_regimes({"GOOG": goog_bars()}, labeler=constant)
    assert report.vol_agreement == pytest.approx(0.8, abs=0.01)
    assert report.vol_balanced_accuracy == 0.5
    assert report.bull_recall == 1.0 and report.bear_recall == 0.0
    assert report.trend_balanced_accuracy == 0.5
    assert report.mean_run_length == len(goog_bars())
    assert not report.meets_goals()


def test_goals_on_goog() -> None:
    """Real daily GOOG 2004-2013: the goals of docs/signals.md."""
    report = evaluate_regimes({"GOOG": goog_bars()})
    assert report.trend_balanced_accuracy >= 0.75
    assert report.bull_recall >= 0.7 and report.bear_recall >= 0.7
    assert report.median_lag <= 20
    assert report.mean_run_length >= 15
    assert report.vol_balanced_accuracy >= 0.80
    assert report.meets_goals()
    # The earlier hidden-Markov trend label misses them: the figures discriminate.
    hmm = evaluate_regimes({"GOOG": goog_bars()}, trend_method="hmm")
    assert hmm.trend_balanced_accuracy < 0.6 and hmm.mean_run_length < 10


@pytest.mark.slow
def test_accuracy_on_synthetic_source() -> None:
    """The measurement of docs/signals.md: seeds 0-4, 8 symbols, 2000-2020, true regimes.

    The drawdown trend label (default) stays well above the 0.407 majority baseline but below
    the hidden-Markov label's 0.61 (the trade-off is documented); the volatility label is
    unchanged at 0.83.
    """
    bars, truths = load_series()
    assert len(bars) == 40 and sum(map(len, bars.values())) == 237_160
    default = evaluate_regimes(bars, truths=truths).truth
    assert default["volatility"] >= 0.83
    assert default["trend"] >= 0.50
    hmm = evaluate_regimes(bars, truths=truths, trend_method="hmm").truth
    assert hmm["trend"] >= 0.61
    assert hmm["volatility"] >= 0.83


def test_cli_regimes_evaluate_on_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    goog = goog_bars().loc[:"2012-12-31"]
    csv = goog.rename(columns=str.title).rename_axis("Date")
    csv.index = csv.index.strftime("%Y-%m-%d")
    csv.to_csv(tmp_path / "GOOG.csv")
    args = ["regimes", "evaluate", "--source", str(tmp_path), "--symbols", "GOOG"]
    code = main([*args, "--end", "2011-12-31"])
    out = capsys.readouterr().out
    expected = evaluate_regimes({"GOOG": goog.loc[:"2011-12-31"]})
    assert code == (0 if expected.meets_goals() else 4)

    def figure(pattern: str) -> float:
        found = re.search(pattern + r" ([0-9.]+)", out)
        assert found, (pattern, out)
        return float(found.group(1))

    assert figure(r"bars") == len(goog.loc[:"2011-12-31"])
    assert figure(r"trend balanced accuracy \(L=20\)") == round(expected.trend_balanced_accuracy, 3)
    assert figure("bull recall") == round(expected.bull_recall, 3)
    assert figure("bear recall") == round(expected.bear_recall, 3)
    assert figure("median lag") == expected.median_lag
    assert figure("mean run length") == round(expected.mean_run_length, 1)
    assert figure("volatility balanced accuracy") == round(expected.vol_balanced_accuracy, 3)
    assert "plain agreement" in out
    assert expected.trend_balanced_accuracy >= 0.75


def test_cli_regimes_evaluate_reports_a_missing_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["regimes", "evaluate", "--source", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_evaluate_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no series"):
        evaluate_regimes({})
    with pytest.raises(ValueError, match="lag"):
        evaluate_regimes({"GOOG": goog_bars()}, lag=-1)
