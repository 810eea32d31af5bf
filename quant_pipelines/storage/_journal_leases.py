"""Leases on running Optuna trials: ``<journal>_leases`` documents stamped by the server clock.

JournalStorage has no heartbeat, so :class:`~quant_pipelines.storage.optuna_journal.
MongoJournalStorage` leases running trials: each worker stamps ``<collection>_leases`` (one
document ``{_id: trial id, study, worker, node, pid, beat}`` per running trial) every
``heartbeat_interval`` seconds with the *server's* clock (``$currentDate``), and staleness is
judged against the server's clock (``hello.localTime``), so worker clocks do not matter once a
trial has its first stamp. A lease also names its holder's machine and process (:func:`node`),
so a trial whose holder was a process of this machine that no longer runs is stale at once.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Callable
from typing import Any

import psutil
from pymongo import UpdateOne
from pymongo.database import Database

from quant_pipelines._utils.time import utc
from quant_pipelines.storage._journal_io import retry, start_lease_thread

__all__ = ["TrialLeases", "holder_dead", "node", "process_gone", "start_lease_thread"]


#: Tells whether a lease document's holder is gone (whatever the lease's age).
DeadHolder = Callable[[dict[str, Any]], bool]


class TrialLeases:
    """The lease documents of one journal (``<collection>_leases``).

    Args:
        db: The project database.
        collection: The journal collection; the leases live in ``<collection>_leases``.
        retry_timeout: Seconds to keep retrying an operation on connection errors.
    """

    def __init__(self, db: Database, collection: str, *, retry_timeout: float = 30.0) -> None:
        self.coll = db[f"{collection}_leases"]
        self.retry_timeout = retry_timeout

    def stamp(self, trials: dict[int, int], worker: str, *, node: str | None = None) -> None:
        """Sets the leases of running trials (trial id -> study id) to the server's time.

        Args:
            trials: Trial id -> study id (-1 while unknown).
            worker: The holder ("host:pid:id").
            node: The holder's machine and PID namespace (see :func:`node`); with it, the
                lease also stores this process's ``pid``.
        """
        holder: dict[str, Any] = {"worker": worker}
        if node is not None:
            holder.update(node=node, pid=os.getpid())
        if trials:
            self.coll.bulk_write(
                [
                    UpdateOne(
                        {"_id": tid},
                        {"$currentDate": {"beat": True}, "$set": {"study": sid, **holder}},
                        upsert=True,
                    )
                    for tid, sid in trials.items()
                ],
                ordered=False,
            )

    def expired(
        self, trial_ids: list[int], grace_period: float, *, dead: DeadHolder | None = None
    ) -> tuple[set[int], set[int]]:
        """Of ``trial_ids``, those whose lease is older than ``grace_period`` by the server's
        clock (or whose lease document ``dead`` says is held by a dead process), and those
        with no lease at all."""

        def query() -> tuple[set[int], set[int]]:
            now = utc(self.coll.database.command("hello")["localTime"])
            cutoff = now - dt.timedelta(seconds=grace_period)
            seen: set[int] = set()
            old: set[int] = set()
            for doc in self.coll.find({"_id": {"$in": trial_ids}}):
                seen.add(doc["_id"])
                if utc(doc["beat"]) < cutoff or (dead is not None and dead(doc)):
                    old.add(doc["_id"])
            return old, set(trial_ids) - seen

        return retry(query, self.retry_timeout, f"leases {self.coll.name}")

    def drop(self, study_id: int, keep: list[int]) -> None:
        """Deletes the leases of a study's trials that no longer run."""
        retry(
            lambda: self.coll.delete_many({"study": study_id, "_id": {"$nin": keep}}),
            self.retry_timeout,
            f"leases {self.coll.name}",
        )


def node() -> str | None:
    """This machine and PID namespace: hostname, boot id and PID-namespace inode (Linux).

    Two processes with the same node see the same PIDs, so one can tell whether the other
    still runs. None where the boot id or namespace cannot be read: no such shortcut then.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        pid_ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    return f"{socket.gethostname()}/{boot}/{pid_ns}"


def process_gone(pid: int) -> bool:
    """Whether no process ``pid`` runs (a zombie does not run)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:  # it exists, but is not ours to inspect
        return False


def holder_dead(lease: dict[str, Any], this_node: str | None) -> bool:
    """Whether a lease was stamped by another process of this node that no longer runs."""
    pid = lease.get("pid")
    if this_node is None or lease.get("node") != this_node or not isinstance(pid, int):
        return False
    return pid != os.getpid() and process_gone(pid)
