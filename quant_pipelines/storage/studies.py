"""The ``studies`` and ``trials`` mirrors of Optuna studies, and the leaderboard read from them.

The Optuna journal (:mod:`quant_pipelines.storage.optuna_journal`) is the source of truth; these
collections are denormalised copies for queries and dashboards, upserted on their natural keys
(``study_name``; ``(study_name, number)``), so writing the same trial twice changes nothing.
:class:`StudiesRepository` is the ``StudyRecorder`` the optimizer's runner writes through.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import ASCENDING, MongoClient, UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure

from quant_pipelines._utils.time import utc_now
from quant_pipelines.storage._trial_writes import TrialWrites
from quant_pipelines.storage.collections import STUDIES, TRIALS, UNIQUE_KEYS
from quant_pipelines.storage.indexes import unique_index_name

_log = logging.getLogger(__name__)
_DUPLICATE_KEY = 11000
#: createIndexes errors of an index that exists with the same name or key but other options.
_INDEX_CONFLICTS = frozenset({85, 86})


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
            "$set": {**fields, "study_name": study_name, "updated_at": utc_now()},
            "$setOnInsert": {"created_at": utc_now()},
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
    The insert relies on the unique ``(study_name, number)`` index to reject the keys already
    taken, so the index is first ensured (once per client, database and collection, the same
    index as ``ensure_indexes``); without a unique index on the key (one could not be
    created), every document is upserted.

    Returns:
        The number of documents written.
    """
    if not docs:
        return 0
    now = utc_now()
    rows = []
    for d in docs:
        key = {"study_name": study_name, "number": int(d["number"])}
        rows.append({**d, **key, "updated_at": now})
    taken: list[int] = list(range(len(rows)))
    if _unique_key_ensured(db, TRIALS):
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


#: client -> {(database, collection): whether a unique index on the natural key exists}.
#: Clients compare equal when they reach the same deployment.
_UNIQUE_KEY_ENSURED: weakref.WeakKeyDictionary[MongoClient, dict[tuple[str, str], bool]] = (
    weakref.WeakKeyDictionary()
)
_UNIQUE_KEY_LOCK = threading.Lock()


def _unique_key_ensured(db: Database, collection: str, *, refresh: bool = False) -> bool:
    """Whether ``collection`` has a unique index on its natural key, creating it if missing.

    The index is the one ``ensure_indexes`` creates (same key, same name), so either may run
    first. The answer is cached per client, database and collection: a collection dropped
    while the process runs gets its index back from the next :class:`StudiesRepository` (or
    ``ensure_indexes``), not from the module functions.

    Args:
        db: The project database.
        collection: ``trials`` or ``studies``.
        refresh: Ask the server even when the answer is cached.
    """
    key = (db.name, collection)
    if not refresh:
        with _UNIQUE_KEY_LOCK:
            known = _UNIQUE_KEY_ENSURED.get(db.client, {}).get(key)
        if known is not None:
            return known
    ok = _create_unique_key_index(db, collection)
    with _UNIQUE_KEY_LOCK:
        _UNIQUE_KEY_ENSURED.setdefault(db.client, {})[key] = ok
    return ok


def _create_unique_key_index(db: Database, collection: str) -> bool:
    """Creates the unique natural-key index of ``collection`` (a no-op when it exists).

    Returns:
        Whether the collection now has a unique index on its natural key (also true when an
        equivalent one exists under another name).
    """
    fields = list(UNIQUE_KEYS[collection])
    try:
        db[collection].create_index(
            [(f, ASCENDING) for f in fields], unique=True, name=unique_index_name(collection)
        )
        return True
    except OperationFailure as exc:
        if exc.code not in _INDEX_CONFLICTS:
            raise
    unique = any(
        info.get("unique") and [k for k, _ in info["key"]] == fields
        for info in db[collection].index_information().values()
    )
    if not unique:
        _log.warning(
            "%s has no unique index on %s: trials are upserted one by one", collection, fields
        )
    return unique


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


_STUDY_FIELDS = {
    "_id": 0,
    "study_name": 1,
    "strategy": 1,
    "asset_class": 1,
    "objective": 1,
    "space": 1,
    "statistics": 1,
    "baseline": 1,
    "symbols": 1,
    "portfolio": 1,
    "start": 1,
    "end": 1,
    "validation": 1,
    "promotion": 1,
    "status": 1,
}
_TRIAL_FIELDS = {
    "_id": 0,
    "study_name": 1,
    "number": 1,
    "state": 1,
    "feasible": 1,
    "params": 1,
    "value": 1,
    "values": 1,
    "in_sample": 1,
    "validation": 1,
    "holdout": 1,
    "deflated_sharpe": 1,
    "is_metrics": 1,
    "oos_metrics": 1,
}


def leaderboard_inputs(
    db: Database,
    *,
    objective: str | None = None,
    strategy: str | None = None,
    asset_class: str | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The study documents and their complete, feasible trial documents for the leaderboard
    (``optimizer.rank_leaderboard`` ranks them).

    Args:
        db: The project database.
        objective: Only studies of this objective.
        strategy: Only studies of this strategy.
        asset_class: Only studies on this asset class.

    Returns:
        (studies, trials).
    """
    query: dict[str, Any] = {}
    for key, value in (("objective", objective), ("strategy", strategy)):
        if value is not None:
            query[key] = value
    if asset_class is not None:
        query["asset_class"] = asset_class
    found = list(db[STUDIES].find(query, _STUDY_FIELDS).sort("study_name", 1))
    names = [s["study_name"] for s in found]
    trials = list(
        db[TRIALS].find(
            {"study_name": {"$in": names}, "state": "COMPLETE", "feasible": True},
            _TRIAL_FIELDS,
        )
    )
    return found, trials


def record_promotions(db: Database, promotions: Sequence[Mapping[str, Any]]) -> int:
    """Stores each study's promotion decision in its document (``promotion``).

    Args:
        db: The project database.
        promotions: One per study: ``study`` plus the decision (``trial``, ``promoted``,
            ``reason``, ``rank_by``, ``observed``, ``thresholds`` ...).

    Returns:
        The number of studies updated.
    """
    now = utc_now()
    ops = [
        UpdateOne(
            {"study_name": p["study"]},
            {"$set": {"promotion": {**p, "decided_at": now}, "updated_at": now}},
        )
        for p in promotions
    ]
    if not ops:
        return 0
    return db[STUDIES].bulk_write(ops, ordered=False).modified_count


def promoted_trials(
    db: Database, *, asset_class: str | None = None, objective: str | None = None
) -> list[dict[str, Any]]:
    """The promoted trial of every study whose selected trial passed the gate.

    Returns:
        Rows: ``study``, ``trial``, ``strategy``, ``asset_class``, ``objective``, ``symbols``,
        ``params``, ``holdout_sharpe``, ``baseline_holdout_sharpe``, ``in_sample_improvement``
        and the study's ``promotion`` document; best holdout Sharpe first.
    """
    query: dict[str, Any] = {"promotion.promoted": True}
    if asset_class is not None:
        query["asset_class"] = asset_class
    if objective is not None:
        query["objective"] = objective
    rows = []
    for study in db[STUDIES].find(query, _STUDY_FIELDS):
        number = study["promotion"]["trial"]
        trial = db[TRIALS].find_one(
            {"study_name": study["study_name"], "number": number}, _TRIAL_FIELDS
        )
        if trial is None:
            continue
        base = study.get("baseline") or {}
        in_sample = trial.get("in_sample", trial.get("value"))
        base_is = (base.get("scores") or {}).get("in_sample") or base.get("values") or [None]
        rows.append(
            {
                "study": study["study_name"],
                "trial": number,
                "strategy": study.get("strategy"),
                "asset_class": study.get("asset_class"),
                "objective": study.get("objective"),
                "symbols": study.get("symbols") or [],
                "portfolio": bool(study.get("portfolio", False)),
                "params": trial.get("params") or {},
                "holdout_sharpe": (trial.get("oos_metrics") or {}).get("sharpe"),
                "baseline_holdout_sharpe": (base.get("oos_metrics") or {}).get("sharpe"),
                "in_sample_improvement": (
                    None if in_sample is None or base_is[0] is None else in_sample - base_is[0]
                ),
                "promotion": study["promotion"],
            }
        )
    rows.sort(key=lambda r: -(r["holdout_sharpe"] if r["holdout_sharpe"] is not None else -1e9))
    return rows


class StudiesRepository:
    """The optimizer's ``StudyRecorder`` on MongoDB: the module's functions bound to ``db``.

    A trial this repository has written before is rewritten with only its changed fields
    (:class:`~quant_pipelines.storage._trial_writes.TrialWrites`).

    Args:
        db: The project database.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._trial_writes = TrialWrites(upsert_trials)
        # The mirrors are upserted on their natural keys, and the bulk insert of new trials
        # relies on the unique index to reject repeats: ensure it here, whether or not
        # ensure_indexes ran. When MongoDB is unreachable, the first write ensures it.
        try:
            for collection in (STUDIES, TRIALS):
                _unique_key_ensured(db, collection, refresh=True)
        except ConnectionFailure as exc:
            _log.warning("indexes of %s/%s not ensured yet: %s", STUDIES, TRIALS, exc)

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
        self._trial_writes.forget(study_name, number)
        upsert_trial(self.db, study_name, number, fields)

    def upsert_trials(self, study_name: str, docs: Sequence[Mapping[str, Any]]) -> int:
        """See :func:`upsert_trials`; only the changed fields of trials written before."""
        return self._trial_writes.upsert(self.db, study_name, docs)

    def get_study(self, study_name: str) -> dict[str, Any] | None:
        """See :func:`get_study`."""
        return get_study(self.db, study_name)

    def leaderboard_inputs(
        self,
        *,
        objective: str | None = None,
        strategy: str | None = None,
        asset_class: str | None = None,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """See :func:`leaderboard_inputs`."""
        return leaderboard_inputs(
            self.db, objective=objective, strategy=strategy, asset_class=asset_class
        )
