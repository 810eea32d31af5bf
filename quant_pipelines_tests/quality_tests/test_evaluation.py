"""The evaluation harness's matching rules, on hand-made scores and labels."""

from __future__ import annotations

import pandas as pd
import pytest

from quant_pipelines.quality import QUALITY_GOALS, evaluate
from quant_pipelines.quality._eval_real import evaluate_real
from quant_pipelines.quality.harness import early_close_times

IDX = pd.date_range("2024-01-01", periods=20, freq="D", tz="UTC", name="ts")


def scores(levels: dict[int, tuple[str, str]], *, drop=(), dup=()) -> pd.DataFrame:
    """Scores on IDX minus ``drop``, plus repeated rows ``dup``; ``levels``: pos -> (sev, kind)."""
    rows = [i for i in range(20) if i not in drop] + list(dup)
    rows.sort()
    sev = [levels.get(i, ("info", ""))[0] for i in rows]
    kind = [levels.get(i, ("info", ""))[1] for i in rows]
    return pd.DataFrame({"severity": sev, "kind": kind}, index=IDX[rows])


def labels(*pairs: tuple[int, str]) -> pd.DataFrame:
    return pd.DataFrame({"ts": IDX[[p for p, _ in pairs]], "kind": [k for _, k in pairs]})


def test_point_kinds_recall_and_precision() -> None:
    s = scores(
        {
            2: ("critical", "non_positive_price"),
            5: ("warning", "price_spike"),
            9: ("warning", "price_spike"),
        }
    )
    lab = labels((2, "non_positive_price"), (5, "price_spike"), (7, "price_spike"))
    report = evaluate({"X": (s, lab)})
    pk = report.per_kind
    assert pk.loc["price_spike", "events"] == 2
    assert pk.loc["price_spike", "recall_warning"] == 0.5
    assert pk.loc["price_spike", "recall_critical"] == 0.0
    assert pk.loc["price_spike", "precision"] == 0.5  # bar 9 is a false positive
    assert pk.loc["non_positive_price", "recall_critical"] == 1.0
    assert report.clean_bars == 17
    assert report.fp_rate_warning == pytest.approx(1 / 17)
    assert report.fp_rate_critical == 0.0


def test_stale_run_is_one_event_and_bar_recall_counts_bars() -> None:
    s = scores({13: ("warning", "stale_price"), 14: ("warning", "stale_price")})
    lab = labels(*[(i, "stale_price") for i in range(10, 15)])
    pk = evaluate([(s, lab)]).per_kind
    assert pk.loc["stale_price", "events"] == 1
    assert pk.loc["stale_price", "recall_warning"] == 1.0
    assert pk.loc["stale_price", "bar_recall_warning"] == pytest.approx(2 / 5)


def test_missing_bars_are_carried_by_the_next_bar() -> None:
    s = scores({8: ("warning", "missing_bars")}, drop=(6, 7))
    lab = labels((6, "missing_bars"), (7, "missing_bars"))
    report = evaluate([(s, lab)])
    pk = report.per_kind
    assert pk.loc["missing_bars", "events"] == 1
    assert pk.loc["missing_bars", "recall_warning"] == 1.0
    assert pk.loc["missing_bars", "precision"] == 1.0
    assert report.clean_bars == 17  # 18 bars present, bar 8 explained by the gap


def test_duplicates_count_once_at_their_highest_severity() -> None:
    s = scores({4: ("critical", "duplicate_bar")}, dup=(4,))
    report = evaluate([(s, labels((4, "duplicate_bar")))])
    assert report.bars == 20
    assert report.per_kind.loc["duplicate_bar", "recall_critical"] == 1.0


def test_goals() -> None:
    s = scores(
        {
            1: ("critical", "non_positive_price"),
            3: ("warning", "price_spike"),
            5: ("warning", "stale_price"),
            12: ("critical", "price_spike"),
        }
    )
    lab = labels((1, "non_positive_price"), (3, "price_spike"), (5, "stale_price"))
    report = evaluate([(s, lab)])
    results = report.goal_results().set_index("goal")["met"]
    assert results.tolist() == [True, True, True, False]  # one critical in 17 clean bars
    assert not report.meets_goals()
    assert report.meets_goals(QUALITY_GOALS[:3])
    text = report.to_markdown()
    assert "price_spike" in text and "**no**" in text


def test_real_data_matching_rules() -> None:
    """Stale runs from their 5th close, gaps on the next bar, precision, early closes."""
    corrupted = scores(
        {
            2: ("critical", "price_spike"),  # planted x10: caught at critical
            3: ("warning", "price_spike"),  # its reversion: a clean bar, alerted
            8: ("warning", "missing_bars"),  # carries the dropped session 7
            13: ("warning", "stale_price"),  # labels 11..16 = closes 2..7 of a run from 10
            14: ("warning", "stale_price"),
            15: ("warning", "stale_price"),
            16: ("warning", "stale_price"),
            19: ("critical", "non_positive_price"),  # clean bar at critical
        },
        drop=(7,),
    )
    lab = labels(
        (2, "price_x10"),
        (7, "dropped_session"),
        *[(i, "stale_run") for i in range(11, 17)],
        (5, "zero_volume"),
    )
    clean = scores({4: ("warning", "price_spike"), 9: ("critical", "price_spike")})
    report = evaluate_real({"X": clean}, {"X": (corrupted, lab)}, early_closes={"X": IDX[[4, 6]]})
    pk = report.per_kind
    assert pk.loc["price_x10", "recall_critical"] == 1.0
    assert pk.loc["price_x10", "alerts_after"] == 1
    assert pk.loc["dropped_session", "recall_warning"] == 1.0
    assert pk.loc["stale_run", "events"] == 1
    assert pk.loc["stale_run", "recall_warning"] == 1.0  # closes 2-4 need no flag
    assert pk.loc["zero_volume", "recall_warning"] == 0.0
    assert report.corrupted_bars == 19 and report.corrupted_clean_bars == 19 - 9
    assert report.precision_critical == pytest.approx(1 / 2)
    assert report.precision_warning == pytest.approx(6 / 8)
    assert report.alerts.loc["price_spike", "precision_warning"] == pytest.approx(1 / 2)
    assert report.fp_rate_warning == pytest.approx(2 / 20)
    assert report.fp_rate_critical == pytest.approx(1 / 20)
    assert (report.early_closes, report.early_closes_flagged) == (2, 1)
    goals = report.goal_results().set_index("goal")["met"]
    assert not goals["early closes flagged (clean bars)"]
    assert goals["x10 price detected at critical"]
    assert not goals["zero volume detected at warning+"]
    assert "**not met**" in report.to_markdown()
    assert report.to_dict()["goals"][0]["measured"] == pytest.approx(0.1)


def test_real_data_stale_run_needs_every_bar_from_its_fifth_close() -> None:
    lab = labels(*[(i, "stale_run") for i in range(11, 17)])
    for missing in (14, 16):
        flagged = {i: ("warning", "stale_price") for i in range(14, 17) if i != missing}
        report = evaluate_real({"X": scores({})}, {"X": (scores(flagged), lab)})
        assert report.per_kind.loc["stale_run", "recall_warning"] == 0.0
    early = {i: ("warning", "stale_price") for i in range(11, 14)}
    report = evaluate_real({"X": scores({})}, {"X": (scores(early), lab)})
    assert report.per_kind.loc["stale_run", "recall_warning"] == 0.0
    assert report.precision_warning == 1.0  # the early flags belong to the run


def test_early_close_times_of_xnys() -> None:
    index = pd.DatetimeIndex(["2012-06-01 13:30", "2012-12-31 14:30"], tz="UTC")
    early = early_close_times("XNYS", index)
    dates = sorted({ts.strftime("%Y-%m-%d") for ts in early})
    assert dates == ["2012-07-03", "2012-11-23", "2012-12-24"]
    assert pd.Timestamp("2012-11-23 14:30", tz="UTC") in early  # the session open
    assert pd.Timestamp("2012-11-23", tz="UTC") in early  # a date-only file's stamp
