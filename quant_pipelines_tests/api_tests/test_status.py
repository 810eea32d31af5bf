"""GET /backtests/optimize/{id} and /backtests/leaderboard over seeded requests, studies, trials."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from pymongo.database import Database

from quant_pipelines.storage import requests as req
from quant_pipelines.storage import studies

URL = "/backtests/optimize"


def _trial(number: int, value: float | None, *, strategy: str, asset_class: str, **extra):
    return {
        "number": number,
        "state": "COMPLETE" if value is not None else "FAIL",
        "feasible": True,
        "value": value,
        "values": None if value is None else [value],
        "params": {"fast": number + 2, "slow": 30},
        "strategy": strategy,
        "asset_class": asset_class,
        "is_metrics": {"sharpe": value, "max_drawdown": -0.1 * (number + 1), "n_trades": 10},
        "oos_metrics": {"sharpe": None if value is None else value / 2},
        "deflated_sharpe": 0.5,
        **extra,
    }


def _submit(client: TestClient, body) -> str:
    answer = client.post(URL, json=body)
    assert answer.status_code == 202
    return answer.json()["request_id"]


def test_queued_status(client: TestClient, valid_body):
    request_id = _submit(client, valid_body)
    status = client.get(f"{URL}/{request_id}").json()
    assert status["status"] == "queued"
    assert status["run_id"] is None
    assert status["progress"]["done"] == 0
    assert status["progress"]["total"] == valid_body["n_trials"]
    assert status["top_trials"] == []
    assert status["params"]["symbols"] == valid_body["symbols"]
    assert status["study_name"].endswith(request_id)
    assert dt.datetime.fromisoformat(status["created_at"].replace("Z", "+00:00")).tzinfo


def test_deferred_status(client: TestClient, mongo_db: Database, valid_body):
    request_id = _submit(client, valid_body)
    until = dt.datetime(2030, 1, 2, 21, 30, tzinfo=dt.UTC)
    req.mark_deferred(mongo_db, request_id, until, reason="market hours")
    status = client.get(f"{URL}/{request_id}").json()
    assert status["status"] == "deferred"
    assert status["deferred_until"].startswith("2030-01-02T21:30:00")


def test_running_status_reads_study_progress_and_top_trials(
    client: TestClient, mongo_db: Database, valid_body
):
    request_id = _submit(client, valid_body)
    doc = req.mark_launched(mongo_db, request_id, request_id)
    req.record_run_status(mongo_db, request_id, request_id, "run-abc", "running")
    study = doc["study_name"]
    progress = {"done": 3, "total": 50, "best_value": 1.4, "best_params": {"fast": 4}}
    progress.update(trials_per_hour=720.0, eta_s=235.0)
    studies.update_progress(mongo_db, study, progress, status="running")
    trials = [
        _trial(0, 0.9, strategy="sma_crossover", asset_class="equity"),
        _trial(1, None, strategy="sma_crossover", asset_class="equity"),
        _trial(2, 1.4, strategy="sma_crossover", asset_class="equity"),
        _trial(3, 1.1, strategy="sma_crossover", asset_class="equity"),
    ]
    studies.upsert_trials(mongo_db, study, trials)
    status = client.get(f"{URL}/{request_id}", params={"top": 2}).json()
    assert status["status"] == "running"
    assert status["run_id"] == "run-abc"
    assert status["study_status"] == "running"
    assert status["progress"] == progress
    assert [t["trial"] for t in status["top_trials"]] == [2, 3]
    top = status["top_trials"][0]
    assert top["rank"] == 1
    assert top["objective"] == 1.4
    assert top["oos_sharpe"] == 0.7
    assert top["params"] == {"fast": 4, "slow": 30}
    assert len(client.get(f"{URL}/{request_id}").json()["top_trials"]) == 3


def test_succeeded_and_failed_status(client: TestClient, mongo_db: Database, valid_body):
    ok_id = _submit(client, valid_body)
    req.mark_launched(mongo_db, ok_id, "run-1")
    req.update_status(mongo_db, ok_id, "running", progress={"done": 50, "total": 50})
    req.update_status(mongo_db, ok_id, "succeeded")
    ok = client.get(f"{URL}/{ok_id}").json()
    assert ok["status"] == "succeeded"
    assert ok["finished_at"] is not None
    assert ok["progress"]["done"] == 50
    bad_id = _submit(client, {**valid_body, "seed": 99})
    req.update_status(mongo_db, bad_id, "failed", error="no bars for AAPL in range")
    bad = client.get(f"{URL}/{bad_id}").json()
    assert (bad["status"], bad["error"]) == ("failed", "no bars for AAPL in range")


@pytest.mark.parametrize("request_id", ["req_" + "0" * 32, "nope", "%24ne"])
def test_unknown_request_is_404(client: TestClient, request_id):
    assert client.get(f"{URL}/{request_id}").status_code == 404


def test_top_is_bounded(client: TestClient, valid_body):
    request_id = _submit(client, valid_body)
    assert client.get(f"{URL}/{request_id}", params={"top": 51}).status_code == 422
    assert client.get(f"{URL}/{request_id}", params={"top": -1}).status_code == 422


STATS = {
    "pbo": {"pbo": 0.2},
    "spa": {"pvalue": 0.03},
    "deflated_sharpe": {},
    "buy_hold_holdout_sharpe": 0.1,
}


@pytest.fixture
def seeded_trials(mongo_db: Database) -> None:
    """Two Sharpe studies (sma on equity, momentum on crypto) and a total-return one, with three
    trials each whose validation order differs from their in-sample order."""
    for name, strategy, asset_class, objective, base in (
        ("sma-eq", "sma_crossover", "equity", "sharpe", 1.0),
        ("mom-cr", "momentum", "crypto", "sharpe", 1.05),
        ("ret-eq", "sma_crossover", "equity", "total_return", 5.0),
    ):
        studies.upsert_study(
            mongo_db,
            name,
            {
                "strategy": strategy,
                "asset_class": asset_class,
                "objective": objective,
                "statistics": STATS,
            },
        )
        studies.upsert_trials(
            mongo_db,
            name,
            [
                _trial(
                    i,
                    base + i / 10,
                    strategy=strategy,
                    asset_class=asset_class,
                    in_sample=base + (2 - i),  # the best in sample is the worst on validation
                    validation=base + i / 10,
                    holdout=base - i,
                    params={"fast": 10 * i + 2, "slow": 30 * i + 100},
                )
                for i in range(3)
            ],
        )


ROW_FIELDS = {
    "rank",
    "study",
    "params",
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
}


def test_leaderboard_ranks_within_one_objective_on_validation(client: TestClient, seeded_trials):
    board = client.get(
        "/backtests/leaderboard", params={"objective": "sharpe", "rank_by": "validation"}
    ).json()
    assert (board["objective"], board["rank_by"], board["limit"]) == ("sharpe", "validation", 20)
    rows = board["entries"]
    assert {row["objective_name"] for row in rows} == {"sharpe"}
    ranked = [row["validation"] for row in rows]
    assert ranked == sorted(ranked, reverse=True) and len(rows) == 6
    assert [row["rank"] for row in rows] == list(range(1, 7))
    first = rows[0]
    assert (first["study"], first["trial"], first["strategy"]) == ("mom-cr", 2, "momentum")
    assert set(first) >= ROW_FIELDS
    assert first["params"] == "fast=22, slow=160"
    by_in_sample = client.get(
        "/backtests/leaderboard", params={"objective": "sharpe", "rank_by": "in_sample"}
    ).json()["entries"]
    assert by_in_sample[0]["trial"] == 0


def test_objectives_are_grouped_never_compared(client: TestClient, seeded_trials):
    rows = client.get("/backtests/leaderboard").json()["entries"]
    groups = [row["objective_name"] for row in rows]
    assert groups == sorted(groups)  # sharpe rows, then total_return rows
    assert [r["rank"] for r in rows if r["objective_name"] == "total_return"] == [1, 2, 3]
    assert next(r["rank"] for r in rows if r["objective_name"] == "sharpe") == 1


def test_leaderboard_filters_and_limit(client: TestClient, seeded_trials):
    sma = client.get(
        "/backtests/leaderboard", params={"strategy": "sma_crossover", "objective": "sharpe"}
    ).json()
    assert {row["study"] for row in sma["entries"]} == {"sma-eq"}
    assert sma["strategy"] == "sma_crossover"
    crypto = client.get("/backtests/leaderboard", params={"asset_class": "crypto"}).json()
    assert {row["asset_class"] for row in crypto["entries"]} == {"crypto"}
    none = client.get(
        "/backtests/leaderboard", params={"strategy": "momentum", "asset_class": "equity"}
    ).json()
    assert none["entries"] == []
    top2 = client.get("/backtests/leaderboard", params={"limit": 2, "objective": "sharpe"}).json()[
        "entries"
    ]
    assert [row["rank"] for row in top2] == [1, 2]


@pytest.mark.parametrize(
    ("params", "allowed"),
    [
        ({"rank_by": "oos"}, "'validation', 'deflated_sharpe', 'in_sample' or 'holdout'"),
        ({"objective": "alpha"}, "'sharpe'"),
    ],
)
def test_unknown_rank_by_or_objective_is_422_naming_the_allowed_values(
    client: TestClient, params, allowed
):
    answer = client.get("/backtests/leaderboard", params=params)
    assert answer.status_code == 422
    assert allowed in answer.text


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
        {"asset_class": "bonds"},
        {"strategy": "$ne"},
        {"strategy": "Bad Name"},
    ],
)
def test_leaderboard_rejects_bad_queries(client: TestClient, params):
    assert client.get("/backtests/leaderboard", params=params).status_code == 422
