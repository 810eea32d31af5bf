"""Anomalies in context for the console tests: crypto bars with scores, a price jump, a queue.

Bar documents come from the production ``bar_documents`` with a ``quality`` field as
``write_bar_scores`` stores it (inserted in one batch: the embedded server is slow per update),
anomalies from ``upsert_anomalies``, verdicts from ``transition``; every random number is drawn
from a seeded generator.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pymongo.database import Database

from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.storage import bar_documents
from quant_pipelines.storage.anomaly_workflow import transition
from quant_pipelines.storage.collections import ANOMALIES, BARS, INGEST_BATCHES
from quant_pipelines.storage.quality import upsert_anomalies

START, END = "2023-03-01", "2023-06-30"
#: The flagged session of the price jump: 45 sessions of context before it, 15 after.
JUMP_TS = pd.Timestamp("2023-06-15", tz="UTC")
JUMP = 0.32
BATCH = "market_bars/crypto:2023-06-15"


@dataclass(frozen=True)
class Seeded:
    """Ids of the seeded anomalies, by role."""

    jump: str  # BTCUSD critical price_jump, open
    volume: str  # ETHUSD warning volume_burst, open
    acked: str  # ETHUSD warning price_spike, acknowledged
    gate: str  # AAPL critical validation:ohlc_inconsistent, open (no bars stored)
    resolved: str  # BTCUSD warning, resolved
    false_positive: str  # ETHUSD warning, false positive


def _quality(rng: np.random.Generator, scored_at: dt.datetime) -> dict:
    return {
        "iforest": float(rng.uniform(0.35, 0.62)),
        "prophet": float(max(0.0, rng.normal(0.2, 0.25))),
        "severity": "info",
        "flags": [],
        "rules": [],
        "market_event": False,
        "kind": "",
        "scored_at": scored_at,
    }


def seed_history(db: Database, *, now: dt.datetime, seed: int = 7, days: int = 24) -> None:
    """A month of triage behind the queue, for the KPI strip: one scored batch a day and one
    anomaly closed a day (every fourth a false positive), on April 2023 bars."""
    rng = np.random.default_rng(seed + 1)
    batches, closed = [], []
    for k in range(days, 0, -1):
        when = now - dt.timedelta(days=k, hours=int(rng.integers(0, 6)))
        counts = {
            "info": 300,
            "warning": int(rng.integers(1, 6)),
            "critical": int(rng.integers(0, 2)),
        }
        batches.append(
            {"batch_id": f"history-{k}", "anomalies_by_severity": counts, "scored_at": when}
        )
        opened = when - dt.timedelta(hours=float(rng.uniform(2, 40)))
        status = "false_positive" if k % 4 == 0 else "resolved"
        closed.append(
            {
                "symbol": ("BTCUSD", "ETHUSD")[k % 2],
                "ts": dt.datetime(2023, 4, 1, tzinfo=dt.UTC) + dt.timedelta(days=k),
                "detector": "statistical",
                "rule": "price_spike",
                "severity": "warning",
                "status": status,
                "created_at": opened,
                "closed_at": when,
                f"{status}_at": when,
                "time_to_resolution_s": (when - opened).total_seconds(),
                "history": [
                    {
                        "action": status,
                        "from": "open",
                        "to": status,
                        "at": when,
                        "actor": "jane",
                        "note": None,
                    }
                ],
            }
        )
    db[INGEST_BATCHES].insert_many(batches)
    db[ANOMALIES].insert_many(closed)


def seed_console_data(db: Database, *, seed: int = 7, now: dt.datetime | None = None) -> Seeded:
    """Writes the bars, their scores and six anomalies; returns the anomalies' ids."""
    rng = np.random.default_rng(seed)
    now = now or dt.datetime.now(dt.UTC)
    source = SyntheticSource(seed=seed)
    for symbol in ("BTCUSD", "ETHUSD"):
        bars = source.bars(symbol, START, END)
        if symbol == "BTCUSD":  # the jump: close, high and volume of one session
            bars.loc[JUMP_TS, "close"] = bars.loc[JUMP_TS, "open"] * (1 + JUMP)
            bars.loc[JUMP_TS, "high"] = bars.loc[JUMP_TS, "close"] * 1.01
            bars.loc[JUMP_TS, "volume"] *= 4
        docs = bar_documents(bars, symbol=symbol, source="synthetic", batch_id=BATCH)
        for doc in docs:
            doc["quality"] = _quality(rng, now)
            if symbol == "BTCUSD" and doc["ts"] == JUMP_TS:
                doc["quality"].update(
                    iforest=0.88,
                    prophet=2.6,
                    severity="critical",
                    flags=["iforest", "price_jump", "prophet_price"],
                    rules=["price_jump"],
                    kind="price_spike",
                )
        db[BARS].insert_many(docs)
    day = dt.timedelta(days=1)
    rows = [
        dict(
            symbol="BTCUSD",
            ts=JUMP_TS,
            detector="rules",
            rule="price_jump",
            rules=["price_jump"],
            severity="critical",
            score=0.88,
            iforest=0.88,
            prophet=2.6,
            threshold=0.72,
            kind="price_spike",
            market_event=False,
            batch_id=BATCH,
        ),
        dict(
            symbol="ETHUSD",
            ts=JUMP_TS - 3 * day,
            detector="statistical",
            rule="volume_burst",
            rules=[],
            severity="warning",
            score=0.77,
            iforest=0.77,
            prophet=0.6,
            threshold=0.72,
            kind="volume_burst",
            market_event=False,
            batch_id=BATCH,
        ),
        dict(
            symbol="ETHUSD",
            ts=JUMP_TS - 9 * day,
            detector="statistical",
            rule="price_spike",
            rules=[],
            severity="warning",
            score=0.74,
            iforest=0.74,
            prophet=1.4,
            threshold=0.72,
            kind="price_spike",
            market_event=True,
            batch_id=BATCH,
        ),
        dict(
            symbol="AAPL",
            ts=pd.Timestamp("2023-06-12", tz="UTC"),
            detector="validation:ohlc_inconsistent",
            rule="ohlc_inconsistent",
            severity="critical",
            score=1.0,
            threshold=0.0,
            message="AAPL 2023-06-12: high below low",
            batch_id="market_bars/equity:2023-06-12",
        ),
        dict(
            symbol="BTCUSD",
            ts=JUMP_TS - 20 * day,
            detector="statistical",
            rule="price_level",
            rules=[],
            severity="warning",
            score=0.73,
            iforest=0.73,
            prophet=1.3,
            threshold=0.72,
            kind="price_level",
            market_event=False,
            batch_id=BATCH,
        ),
        dict(
            symbol="ETHUSD",
            ts=JUMP_TS - 30 * day,
            detector="statistical",
            rule="volume_drop",
            rules=[],
            severity="warning",
            score=0.75,
            iforest=0.75,
            prophet=0.5,
            threshold=0.72,
            kind="volume_drop",
            market_event=False,
            batch_id=BATCH,
        ),
    ]
    docs = upsert_anomalies(db, rows)
    key = {(d["symbol"], pd.Timestamp(d["ts"]).tz_convert("UTC")): str(d["_id"]) for d in docs}
    ids = [key[(r["symbol"], pd.Timestamp(r["ts"]))] for r in rows]
    db[ANOMALIES].update_many({}, {"$set": {"created_at": now - 3 * day}})
    transition(db, ids[2], "ack", actor="jane", note="looking", now=now - 2 * day)
    transition(db, ids[4], "resolve", actor="jane", note="feed fixed", now=now - day)
    transition(db, ids[5], "false_positive", actor="omar", note="holiday volume", now=now)
    db[INGEST_BATCHES].update_one(
        {"batch_id": BATCH},
        {
            "$set": {
                "anomalies_by_severity": {"info": 300, "warning": 3, "critical": 1},
                "scored_at": now,
            }
        },
        upsert=True,
    )
    return Seeded(*ids)


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of the first form of a console page."""
    match = _CSRF.search(html)
    assert match is not None, "the page has no form with a CSRF token"
    return match.group(1)


def sign_in(client: Any, key: str, *, next_page: str = "/console/queue") -> Any:
    """Signs ``client`` (a TestClient) in to the console; returns the sign-in answer."""
    form = client.get("/console/signin")
    data = {"csrf_token": csrf_of(form.text), "api_key": key, "next": next_page}
    return client.post("/console/signin", data=data, follow_redirects=False)
