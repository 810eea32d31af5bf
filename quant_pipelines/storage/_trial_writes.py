"""Rewrites of ``trials`` mirror documents that send only the fields that changed.

A study's trial documents are written once when each trial finishes, then all again at the
end of the run with the study's final deflated Sharpe ratios. On the embedded server an update
costs about in proportion to the fields it sets (a one-field ``$set`` about a third of a whole
document's), so :class:`TrialWrites` remembers what its repository last wrote to each trial
and rewrites only the top-level fields whose values differ (a trial with none is not written
at all). The documents it writes are exactly those of a whole-document upsert as long as no
other process changed them meanwhile; if one did, each field keeps its last writer's value,
as with whole-document ``$set`` upserts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pymongo import UpdateOne
from pymongo.database import Database

from quant_pipelines._utils.time import utc_now
from quant_pipelines.storage.collections import TRIALS

#: Writes whole trial documents (``studies.upsert_trials``).
WriteWhole = Callable[[Database, str, Sequence[Mapping[str, Any]]], int]
#: Trials remembered at most (about 1.5 kB each); beyond, the memory starts afresh.
MAX_REMEMBERED = 100_000


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same type (1, 1.0 and True are different BSON values)."""
    return type(a) is type(b) and a == b


class TrialWrites:
    """What one repository last wrote to each trial document (module doc).

    Args:
        write_whole: Writes whole documents (new trials, and trials it has not written).
        max_remembered: Trials remembered at most.
    """

    def __init__(self, write_whole: WriteWhole, *, max_remembered: int = MAX_REMEMBERED) -> None:
        self._write_whole = write_whole
        self._max = max_remembered
        self._last: dict[tuple[str, int], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def forget(self, study_name: str, number: int) -> None:
        """Forgets a trial written some other way (its next write is whole)."""
        with self._lock:
            self._last.pop((study_name, int(number)), None)

    def upsert(self, db: Database, study_name: str, docs: Sequence[Mapping[str, Any]]) -> int:
        """Upserts trial documents (each with its ``number``), sending only what changed.

        Returns:
            The number of documents now as given (all of them).
        """
        keys = [(study_name, int(d["number"])) for d in docs]
        whole: list[Mapping[str, Any]] = []
        changed: list[tuple[Mapping[str, Any], dict[str, Any]]] = []
        with self._lock:
            for key, doc in zip(keys, docs, strict=True):
                last = self._last.get(key)
                if last is None:
                    whole.append(doc)
                    continue
                diff = {k: v for k, v in doc.items() if k not in last or not _same(last[k], v)}
                if diff:
                    changed.append((doc, diff))
        try:
            if changed:
                whole += self._set_changed(db, study_name, changed)
            if whole:
                self._write_whole(db, study_name, whole)
        except BaseException:  # unknown what landed: the next write of these is whole
            with self._lock:
                for key in keys:
                    self._last.pop(key, None)
            raise
        with self._lock:
            if len(self._last) + len(docs) > self._max:
                self._last.clear()
            for key, doc in zip(keys, docs, strict=True):
                self._last[key] = {**self._last.get(key, {}), **doc}
        return len(docs)

    def _set_changed(
        self,
        db: Database,
        study_name: str,
        changed: list[tuple[Mapping[str, Any], dict[str, Any]]],
    ) -> list[Mapping[str, Any]]:
        """``$set`` of the changed fields; returns the documents to write whole instead (all
        of them when some had vanished, e.g. a dropped collection)."""
        now = utc_now()
        ops = [
            UpdateOne(
                {"study_name": study_name, "number": int(doc["number"])},
                {"$set": {**diff, "updated_at": now}},
            )
            for doc, diff in changed
        ]
        result = db[TRIALS].bulk_write(ops, ordered=False)
        if result.matched_count < len(ops):
            return [doc for doc, _ in changed]
        return []
