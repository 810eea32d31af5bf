"""storage/requests.py: the request document and the helpers the Dagster sensor uses."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pytest
from pymongo.database import Database

from quant_pipelines.storage import requests as req

T0 = dt.datetime(2025, 6, 2, 14, 0, tzinfo=dt.UTC)
PARAMS = {"strategy": "sma_crossover", "symbols": ["AAPL"], "n_trials": 10, "urgent": False}


def _new(db: Database, *, at: dt.datetime = T0, **params) -> str:
    return req.create_request(db, {**PARAMS, **params}, now=at).document["request_id"]


def test_new_document_shape(mongo_db: Database):
    result = req.create_request(mongo_db, PARAMS, idempotency_key="k1", now=T0)
    doc = result.document
    assert result.created
    assert doc["request_id"] == req.request_id_for_key("k1")
    assert doc["status"] == req.QUEUED
    assert doc["study_name"] == f"sma_crossover-{doc['request_id']}"
    assert doc == req.get_request(mongo_db, doc["request_id"])
    assert doc["history"] == [{"status": "queued", "at": T0}]


def test_same_key_concurrently_makes_one_document(mongo_db: Database):
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(
                lambda _: req.create_request(mongo_db, PARAMS, idempotency_key="race"), range(16)
            )
        )
    assert sum(r.created for r in results) == 1
    assert len({r.document["request_id"] for r in results}) == 1
    assert mongo_db["optimization_requests"].count_documents({}) == 1


def test_same_key_other_params_conflicts(mongo_db: Database):
    req.create_request(mongo_db, PARAMS, idempotency_key="k")
    with pytest.raises(req.IdempotencyConflictError) as err:
        req.create_request(mongo_db, {**PARAMS, "n_trials": 11}, idempotency_key="k")
    assert err.value.request_id == req.request_id_for_key("k")


def test_pending_requests_order_and_deferral(mongo_db: Database):
    first = _new(mongo_db, at=T0)
    second = _new(mongo_db, at=T0 + dt.timedelta(minutes=1))
    later = _new(mongo_db, at=T0 + dt.timedelta(minutes=2))
    launched = _new(mongo_db, at=T0 + dt.timedelta(minutes=3))
    req.mark_launched(mongo_db, launched, "run-1")
    req.mark_deferred(mongo_db, later, T0 + dt.timedelta(hours=6), reason="market hours")
    now = T0 + dt.timedelta(hours=1)
    assert [d["request_id"] for d in req.pending_requests(mongo_db, now=now)] == [first, second]
    now = T0 + dt.timedelta(hours=7)
    due = [d["request_id"] for d in req.pending_requests(mongo_db, now=now)]
    assert due == [first, second, later]
    assert req.pending_requests(mongo_db, now=now, limit=1)[0]["request_id"] == first


def test_mark_launched_is_idempotent_per_run_key(mongo_db: Database):
    request_id = _new(mongo_db)
    doc = req.mark_launched(mongo_db, request_id, "key-1", now=T0)
    assert (doc["status"], doc["run_key"], doc["run_id"]) == ("launched", "key-1", None)
    assert doc["launched_at"] == T0
    assert req.mark_launched(mongo_db, request_id, "key-1") == doc
    with pytest.raises(req.InvalidRequestTransitionError, match="launched"):
        req.mark_launched(mongo_db, request_id, "key-2")
    with pytest.raises(req.RequestNotFoundError):
        req.mark_launched(mongo_db, "req_missing", "run-3")


def test_deferred_request_can_be_launched(mongo_db: Database):
    request_id = _new(mongo_db)
    until = T0 + dt.timedelta(hours=8)
    doc = req.mark_deferred(mongo_db, request_id, until)
    assert (doc["status"], doc["deferred_until"]) == ("deferred", until)
    assert req.mark_launched(mongo_db, request_id, "run-9")["status"] == "launched"
    with pytest.raises(req.InvalidRequestTransitionError):
        req.mark_deferred(mongo_db, request_id, until)
    with pytest.raises(ValueError, match="timezone"):
        req.mark_deferred(mongo_db, _new(mongo_db), dt.datetime(2025, 1, 1))


def test_update_status_progress_and_terminal_states(mongo_db: Database):
    request_id = _new(mongo_db)
    req.mark_launched(mongo_db, request_id, "run-1")
    doc = req.update_status(mongo_db, request_id, "running", progress={"done": 1, "total": 10})
    doc = req.update_status(mongo_db, request_id, "running", progress={"done": 2})
    assert doc["progress"] == {"done": 2, "total": 10}
    assert [h["status"] for h in doc["history"]] == ["queued", "launched", "running"]
    done = req.update_status(mongo_db, request_id, "succeeded", progress={"done": 10}, now=T0)
    assert (done["status"], done["finished_at"]) == ("succeeded", T0)
    assert req.update_status(mongo_db, request_id, "succeeded") == done
    with pytest.raises(req.InvalidRequestTransitionError, match="succeeded"):
        req.update_status(mongo_db, request_id, "failed")
    with pytest.raises(req.InvalidRequestTransitionError):
        req.update_status(mongo_db, request_id, "queued")


def test_update_status_rejects_unknowns(mongo_db: Database):
    request_id = _new(mongo_db)
    with pytest.raises(ValueError, match="status"):
        req.update_status(mongo_db, request_id, "paused")
    with pytest.raises(ValueError, match="progress"):
        req.update_status(mongo_db, request_id, "running", progress={"$set": 1})
    with pytest.raises(req.RequestNotFoundError):
        req.update_status(mongo_db, "req_missing", "failed")
    failed = req.update_status(mongo_db, request_id, "failed", error="boom")
    assert (failed["status"], failed["error"], failed["run_id"]) == ("failed", "boom", None)


def test_list_requests(mongo_db: Database):
    first, second = _new(mongo_db), _new(mongo_db, at=T0 + dt.timedelta(seconds=1))
    req.mark_launched(mongo_db, first, "run-1")
    assert [d["request_id"] for d in req.list_requests(mongo_db)] == [second, first]
    assert [d["request_id"] for d in req.list_requests(mongo_db, status="queued")] == [second]
