"""RL policy files in GridFS, with their SHA-256 and metrics recorded in ``rl_policies``."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import gridfs
from pymongo.database import Database

from quant_pipelines.storage.collections import RL_POLICIES

BUCKET = "rl_policy_files"


class PolicyNotFoundError(LookupError):
    """No policy has the given id."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class GridFSPolicyStore:
    """Stores policy zips in GridFS; the ``rl_policies`` document is the trusted record.

    The SHA-256 is computed here from the bytes uploaded, not taken from the caller, and a
    load hands back the downloaded file with that recorded hash so the loader can refuse a
    file that changed in storage before any deserialization.

    Args:
        db: The project database.
        workdir: Where downloaded policy files are written.
    """

    def __init__(self, db: Database, *, workdir: str | Path) -> None:
        self._db = db
        self._coll = db[RL_POLICIES]
        self._fs = gridfs.GridFS(db, collection=BUCKET)
        self._workdir = Path(workdir)

    def save_policy(self, path: Path, meta: dict[str, Any]) -> str:
        """Uploads ``path`` and upserts its record; the same bytes give the same policy id.

        Args:
            path: The model zip.
            meta: Metadata (algo, seed, timesteps, hyperparameters, metrics ...). An explicit
                ``policy_id`` in it is kept; otherwise the id is ``<algo>-<sha256[:16]>``.

        Returns:
            The policy id.
        """
        data = Path(path).read_bytes()
        digest = _sha256(data)
        policy_id = meta.get("policy_id") or f"{meta.get('algo', 'policy')}-{digest[:16]}"
        existing = self._coll.find_one({"policy_id": policy_id}, {"sha256": 1, "file_id": 1})
        if existing and existing.get("sha256") == digest and self._fs.exists(existing["file_id"]):
            file_id = existing["file_id"]
        else:
            file_id = self._fs.put(data, filename=f"{policy_id}.zip", sha256=digest)
            if existing and existing.get("file_id") is not None:
                self._fs.delete(existing["file_id"])
        now = dt.datetime.now(dt.UTC)
        record = {k: v for k, v in meta.items() if k not in {"sha256", "policy_id", "run_dir"}}
        self._coll.update_one(
            {"policy_id": policy_id},
            {
                "$set": {
                    **record,
                    "policy_id": policy_id,
                    "sha256": digest,
                    "file_id": file_id,
                    "size_bytes": len(data),
                    "updated_at": now,
                },
                "$setOnInsert": {"created_at": now},
            },
            upsert=True,
        )
        return policy_id

    def load_policy(self, policy_id: str) -> tuple[Path, dict[str, Any]]:
        """Downloads a policy; returns its local path and the stored record (with ``sha256``).

        Raises:
            PolicyNotFoundError: Unknown id or missing file.
        """
        record = self._coll.find_one({"policy_id": policy_id}, {"_id": 0})
        if record is None:
            raise PolicyNotFoundError(f"no RL policy {policy_id!r} in {RL_POLICIES}")
        try:
            data = self._fs.get(record["file_id"]).read()
        except gridfs.errors.NoFile as exc:
            raise PolicyNotFoundError(f"RL policy {policy_id!r} has no file in GridFS") from exc
        self._workdir.mkdir(parents=True, exist_ok=True)
        target = self._workdir / f"{policy_id}.zip"
        target.write_bytes(data)
        return target, record

    def record_metrics(self, policy_id: str, **fields: Any) -> None:
        """Sets metric fields (e.g. ``replay=...``) on a policy's record."""
        self._coll.update_one(
            {"policy_id": policy_id},
            {"$set": {**fields, "updated_at": dt.datetime.now(dt.UTC)}},
        )

    def get(self, policy_id: str) -> dict[str, Any] | None:
        """The policy's record, or None."""
        return self._coll.find_one({"policy_id": policy_id}, {"_id": 0})

    def latest(self, **match: Any) -> list[dict[str, Any]]:
        """Records matching ``match``, newest first."""
        return list(self._coll.find(match, {"_id": 0}).sort("created_at", -1))
