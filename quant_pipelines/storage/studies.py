"""The ``studies`` and ``trials`` mirrors of Optuna studies, and the leaderboard read from them.

The Optuna journal (:mod:`quant_pipelines.storage.optuna_journal`) is the source of truth; these
collections are denormalised copies for queries and dashboards, upserted on their natural keys
(``study_name``; ``(study_name, number)``), so writing the same trial twice changes nothing.
:class:`StudiesRepository` is the ``StudyRecorder`` the optimizer's runner writes through.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import DESCENDING, UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from quant_pipelines.storage.collections import STUDIES, TRIALS

_DUPLICATE_KEY = 11000

#: Leaderboard columns, in display order.
LEADERBOARD_COLUMNS: tuple[str, ...] = (
    "rank",
    "study",
    "trial",
    "strategy",
    "asset_class",
    "params",
    "objective",
    "oos_sharpe",
    "deflated_sharpe",
    "max_drawdown",
    "n_trades",
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def upsert_study(db: Database, study_name: str, fields: Mapping[str, Any]) -> None:
    """Creates or updates a study document (metadata, status, baseline ...).

    Args:
        db: The project database.
        study_name: Natural key.
        fields: Fields to set.
    """
    db[STUDIES].update_one(
        {"study_name": study_name},
        {
            "$set": {**fields, "study_name": study_name, "updated_at": _now()},
            "$setOnInsert": {"created_at": _now()},
        },
        upsert=True,
    )


def update_progress(
    db: Database,
    study_name: str,
    progress: Mapping[str, Any],
    *,
    best: Mapping[str, Any] | None = None,
    status: str | None = None,
) -> None:
    """Sets a study's progress (and best trial and status when given).

    Args:
        db: The project database.
        study_name: Natural key.
        progress: Trials done, trials per hour, ETA ...
        best: The best trial so far (number, value, params ...).
        status: "running", "completed", "failed" ...
    """
    fields: dict[str, Any] = {"progress": dict(progress)}
    if best is not None:
        fields["best"] = dict(best)
    if status is not None:
        fields["status"] = status
    upsert_study(db, study_name, fields)


def upsert_trial(db: Database, study_name: str, number: int, fields: Mapping[str, Any]) -> None:
    """Creates or updates one trial document.

    Args:
        db: The project database.
        study_name: The trial's study.
        number: The trial number within the study.
        fields: Params, values, state, metrics ...
    """
    upsert_trials(db, study_name, [{**fields, "number": number}])


def upsert_trials(db: Database, study_name: str, docs: Sequence[Mapping[str, Any]]) -> int:
    """Upserts many trial documents (each holding its ``number``).

    New trials (the common case) are inserted in one bulk insert, which costs the server less
    than an upsert; the ones whose key already exists are then upserted in one bulk write.

    Returns:
        The number of documents written.
    """
    if not docs:
        return 0
    now = _now()
    rows = []
    for d in docs:
        key = {"study_name": study_name, "number": int(d["number"])}
        rows.append({**d, **key, "updated_at": now})
    taken: list[int] = list(range(len(rows)))
    try:
        db[TRIALS].insert_many([dict(r) for r in rows], ordered=False)
        taken = []
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != _DUPLICATE_KEY for e in errors):
            raise
        taken = [e["index"] for e in errors]
    if taken:
        ops = [
            UpdateOne(
                {"study_name": study_name, "number": rows[i]["number"]},
                {"$set": rows[i]},
                upsert=True,
            )
            for i in taken
        ]
        db[TRIALS].bulk_write(ops, ordered=False)
    return len(rows)


def get_study(db: Database, study_name: str) -> dict[str, Any] | None:
    """The study document, or None."""
    return db[STUDIES].find_one({"study_name": study_name}, {"_id": 0})


def list_trials(
    db: Database, study_name: str, *, states: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """A study's trial documents by number, optionally only those in ``states``."""
    query: dict[str, Any] = {"study_name": study_name}
    if states is not None:
        query["state"] = {"$in": list(states)}
    return list(db[TRIALS].find(query, {"_id": 0}).sort("number", 1))


def leaderboard(
    db: Database,
    *,
    strategy: str | None = None,
    asset_class: str | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """The best feasible completed trials across studies, by objective value (highest first).

    Args:
        db: The project database.
        strategy: Only trials of this strategy.
        asset_class: Only trials of studies on this asset class.
        limit: At most this many rows.

    Returns:
        Rows with the keys of :data:`LEADERBOARD_COLUMNS` (``rank`` from 1; ``objective`` is the
        trial's value, the first objective of a multi-objective study; ``max_drawdown`` and
        ``n_trades`` are in-sample).
    """
    query: dict[str, Any] = {"state": "COMPLETE", "feasible": True, "value": {"$ne": None}}
    if strategy is not None:
        query["strategy"] = strategy
    if asset_class is not None:
        query["asset_class"] = asset_class
    cursor = db[TRIALS].find(query, {"_id": 0}).sort("value", DESCENDING).limit(max(int(limit), 0))
    rows = []
    for rank, doc in enumerate(cursor, start=1):
        is_m = doc.get("is_metrics") or {}
        oos_m = doc.get("oos_metrics") or {}
        rows.append(
            {
                "rank": rank,
                "study": doc["study_name"],
                "trial": doc["number"],
                "strategy": doc.get("strategy"),
                "asset_class": doc.get("asset_class"),
                "params": doc.get("params", {}),
                "objective": doc["value"],
                "oos_sharpe": oos_m.get("sharpe"),
                "deflated_sharpe": doc.get("deflated_sharpe"),
                "max_drawdown": is_m.get("max_drawdown"),
                "n_trades": is_m.get("n_trades"),
            }
        )
    return rows


class StudiesRepository:
    """The optimizer's ``StudyRecorder`` on MongoDB: the module's functions bound to ``db``.

    Args:
        db: The project database.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def upsert_study(self, study_name: str, fields: Mapping[str, Any]) -> None:
        """See :func:`upsert_study`."""
        upsert_study(self.db, study_name, fields)

    def update_progress(
        self,
        study_name: str,
        progress: Mapping[str, Any],
        *,
        best: Mapping[str, Any] | None = None,
        status: str | None = None,
    ) -> None:
        """See :func:`update_progress`."""
        update_progress(self.db, study_name, progress, best=best, status=status)

    def upsert_trial(self, study_name: str, number: int, fields: Mapping[str, Any]) -> None:
        """See :func:`upsert_trial`."""
        upsert_trial(self.db, study_name, number, fields)

    def upsert_trials(self, study_name: str, docs: Sequence[Mapping[str, Any]]) -> int:
        """See :func:`upsert_trials`."""
        return upsert_trials(self.db, study_name, docs)

    def get_study(self, study_name: str) -> dict[str, Any] | None:
        """See :func:`get_study`."""
        return get_study(self.db, study_name)

    def leaderboard(
        self, *, strategy: str | None = None, asset_class: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        """See :func:`leaderboard`."""
        return leaderboard(self.db, strategy=strategy, asset_class=asset_class, limit=limit)
