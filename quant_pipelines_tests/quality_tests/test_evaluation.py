"""The evaluation harness's matching rules, on hand-made scores and labels."""

from __future__ import annotations

import pandas as pd
import pytest

from quant_pipelines.quality import QUALITY_GOALS, evaluate

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
