"""The leaderboard: within one objective, on validation, clustered, and the promotion gate."""

from __future__ import annotations

import pytest

from quant_pipelines.optimizer import GateThresholds, format_params, rank_leaderboard, select_trials

SPACE = {
    "params": [
        {"type": "int", "name": "fast", "low": 2, "high": 100},
        {"type": "int", "name": "slow", "low": 10, "high": 400},
    ]
}
GOOD_STATS = {
    "pbo": {"pbo": 0.1},
    "spa": {"pvalue": 0.02},
    "deflated_sharpe": {},
    "buy_hold_holdout_sharpe": 0.5,
}


def _study(name: str, objective: str = "sharpe", **stats) -> dict:
    return {
        "study_name": name,
        "objective": objective,
        "strategy": "sma_crossover",
        "asset_class": "equity",
        "space": SPACE,
        "statistics": {**GOOD_STATS, **stats},
    }


def _trial(study: str, number: int, *, ins: float, val: float, hold: float, dsr=0.99, **kw):
    return {
        "study_name": study,
        "number": number,
        "state": "COMPLETE",
        "feasible": True,
        "params": kw.pop("params", {"fast": 5 + 10 * number, "slow": 100 + 30 * number}),
        "value": val,
        "in_sample": ins,
        "validation": val,
        "holdout": hold,
        "deflated_sharpe": dsr,
        "is_metrics": {"max_drawdown": -0.2, "n_trades": 12},
        "oos_metrics": {"sharpe": kw.pop("hold_sharpe", hold)},
        **kw,
    }


def test_objectives_are_never_compared() -> None:
    studies = [_study("s", "sharpe"), _study("t", "total_return")]
    trials = [
        _trial("s", 0, ins=0.49, val=0.49, hold=0.6),
        _trial("t", 0, ins=0.77, val=0.77, hold=0.1),
    ]
    rows = rank_leaderboard(studies, trials)
    assert [(r["objective_name"], r["rank"]) for r in rows] == [
        ("sharpe", 1),
        ("total_return", 1),
    ]
    only = rank_leaderboard(studies, trials, objective="sharpe")
    assert [r["study"] for r in only] == ["s"]


def test_default_rank_is_validation_and_the_holdout_never_ranks() -> None:
    studies = [_study("s")]
    trials = [
        _trial("s", 0, ins=2.0, val=0.2, hold=0.3),  # best in sample
        _trial("s", 1, ins=1.0, val=0.9, hold=0.1),  # best on validation
        _trial("s", 2, ins=0.5, val=0.4, hold=1.5),  # best on the holdout
    ]
    rows = rank_leaderboard(studies, trials)
    assert [r["trial"] for r in rows] == [1, 2, 0]
    assert rows[0]["selected"] and not rows[1]["selected"]
    assert [r["trial"] for r in rank_leaderboard(studies, trials, rank_by="in_sample")] == [0, 1, 2]
    by_hold = rank_leaderboard(studies, trials, rank_by="holdout")
    assert [r["trial"] for r in by_hold] == [2, 0, 1]
    assert all(r["selection_on_holdout"] for r in by_hold)
    assert not any(r["promoted"] for r in by_hold)
    assert "holdout" in by_hold[0]["reason"]


def test_unknown_rank_by_names_the_allowed_keys() -> None:
    with pytest.raises(ValueError, match="validation, deflated_sharpe, in_sample, holdout"):
        rank_leaderboard([], [], rank_by="oos")


def test_near_identical_parameter_sets_show_once() -> None:
    studies = [_study("s")]
    trials = [
        _trial("s", 0, ins=1, val=1.00, hold=1, params={"fast": 45, "slow": 269}),
        _trial("s", 1, ins=1, val=0.99, hold=1, params={"fast": 45, "slow": 270}),
        _trial("s", 2, ins=1, val=0.98, hold=1, params={"fast": 46, "slow": 268}),
        _trial("s", 3, ins=1, val=0.50, hold=1, params={"fast": 10, "slow": 100}),
    ]
    rows = rank_leaderboard(studies, trials)
    assert [r["trial"] for r in rows] == [0, 3]
    assert rows[0]["cluster_size"] == 3 and rows[1]["cluster_size"] == 1
    assert rows[0]["params"] == "fast=45, slow=269"
    assert len(rank_leaderboard(studies, trials, cluster_tolerance=0.0)) == 4


def test_every_row_carries_the_fields_of_the_issue() -> None:
    (row,) = rank_leaderboard([_study("s")], [_trial("s", 0, ins=1.1, val=0.8, hold=0.7)])
    for key in (
        "in_sample",
        "validation",
        "holdout",
        "holdout_sharpe",
        "buy_hold_sharpe",
        "deflated_sharpe",
        "pbo",
        "spa_pvalue",
        "max_drawdown",
        "n_trades",
        "promoted",
        "reason",
    ):
        assert key in row, key
    assert row["promoted"] and row["reason"] == "passes every test"


@pytest.mark.parametrize(
    ("stats", "trial_kw", "reason"),
    [
        ({"pbo": {"pbo": 0.62}}, {}, "PBO 0.62 > 0.50"),
        ({}, {"dsr": 0.41}, "DSR 0.41 < 0.95"),
        ({"spa": {"pvalue": 0.34}}, {}, "SPA p 0.340 > 0.10"),
        ({}, {"hold_sharpe": 0.3}, "holdout Sharpe 0.30 <= buy-and-hold 0.50"),
        ({"pbo": None, "pbo_reason": "1 configuration(s)"}, {}, "PBO unavailable"),
    ],
)
def test_the_gate_refuses_a_pick_that_fails_any_test(stats, trial_kw, reason) -> None:
    studies = [_study("s", **stats)]
    trials = [
        _trial("s", 0, ins=1, val=1.0, hold=0.9, **trial_kw),
        _trial("s", 1, ins=1, val=0.5, hold=2.0),  # would pass, but is not the pick
    ]
    rows = rank_leaderboard(studies, trials)
    assert not any(r["promoted"] for r in rows)
    assert reason in rows[0]["reason"]
    assert rows[1]["reason"].startswith("not selected")
    (decision,) = select_trials(studies, trials)
    assert decision["trial"] == 0 and not decision["promoted"]


def test_thresholds_are_configurable() -> None:
    studies = [_study("s", pbo={"pbo": 0.6})]
    trials = [_trial("s", 0, ins=1, val=1, hold=1, dsr=0.9)]
    assert not select_trials(studies, trials)[0]["promoted"]
    loose = GateThresholds(max_pbo=0.7, min_dsr=0.85)
    (decision,) = select_trials(studies, trials, thresholds=loose)
    assert decision["promoted"] and decision["thresholds"]["max_pbo"] == 0.7
    assert decision["observed"]["pbo"] == 0.6


def test_a_study_without_statistics_promotes_nothing() -> None:
    study = _study("s")
    study["statistics"] = None
    (row,) = rank_leaderboard([study], [_trial("s", 0, ins=1, val=1, hold=1)])
    assert not row["promoted"] and "no statistics" in row["reason"]


def test_params_are_readable() -> None:
    assert format_params({"fast": 45, "slow": 269}) == "fast=45, slow=269"
    assert format_params({"k": 2.123456, "short": True}) == "k=2.123, short=True"
