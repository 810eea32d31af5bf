"""RL policies in GridFS: safetensors weights, signed JSON metadata in ``rl_policies``.

A policy document holds ``spec`` (the canonical JSON metadata, as text), ``signature`` (HMAC-
SHA256 over the weights' SHA-256 and ``spec``, made with a key that is not in this database),
``sha256`` of the weights, ``file_id`` of the weights in the ``rl_policy_files`` bucket, and
descriptive copies of the metadata for queries (never trusted by a load). Loads happen in
memory: nothing is written to disk, and a policy id must match :data:`POLICY_ID_PATTERN`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Any

import gridfs
from pymongo.database import Database

from quant_pipelines.storage.collections import RL_POLICIES

BUCKET = "rl_policy_files"
FORMAT = "safetensors+json/1"

#: The same pattern as ``quant_pipelines.rl.hashing.POLICY_ID_PATTERN`` (kept here so that
#: importing storage does not import torch); a test checks that both agree.
POLICY_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_ARTIFACT_FIELDS = {"spec", "signature", "sha256", "file_id", "format", "size_bytes"}


class PolicyNotFoundError(LookupError):
    """No policy has the given id."""


class InvalidPolicyIdError(ValueError):
    """A policy id that does not match :data:`POLICY_ID_PATTERN` (or contains ``..``)."""


def check_policy_id(policy_id: object) -> str:
    """Return ``policy_id`` if it is a valid id.

    Raises:
        InvalidPolicyIdError: Otherwise.
    """
    if (
        not isinstance(policy_id, str)
        or not POLICY_ID_PATTERN.fullmatch(policy_id)
        or ".." in policy_id
    ):
        raise InvalidPolicyIdError(
            f"invalid policy id {policy_id!r}: expected {POLICY_ID_PATTERN.pattern} without '..'"
        )
    return policy_id


@dataclass(frozen=True)
class StoredPolicy:
    """A policy as read from the database: unverified bytes and text (``rl.PolicyArtifact``)."""

    policy_id: str
    weights: bytes
    spec: str
    signature: str


class GridFSPolicyStore:
    """Stores signed policy artifacts: weights in GridFS, metadata and signature in a document.

    The store neither signs nor verifies: ``RLEngine`` does, with a key from outside the
    database (:func:`quant_pipelines.storage.policy_signing_key`).

    Args:
        db: The project database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._coll = db[RL_POLICIES]
        self._fs = gridfs.GridFS(db, collection=BUCKET)

    def save_policy(self, artifact: Any, meta: dict[str, Any]) -> str:
        """Uploads an artifact's weights and upserts its record.

        Args:
            artifact: A ``rl.PolicyArtifact`` (``policy_id``, ``weights``, ``spec``,
                ``signature``).
            meta: Descriptive metadata (algo, seed, timesteps, hyperparameters, metrics ...)
                copied into the document for queries; loads never read it.

        Returns:
            The policy id.

        Raises:
            InvalidPolicyIdError: On an invalid id.
        """
        policy_id = check_policy_id(artifact.policy_id)
        data = bytes(artifact.weights)
        digest = hashlib.sha256(data).hexdigest()
        existing = self._coll.find_one({"policy_id": policy_id}, {"sha256": 1, "file_id": 1})
        if existing and existing.get("sha256") == digest and self._fs.exists(existing["file_id"]):
            file_id = existing["file_id"]
        else:
            file_id = self._fs.put(data, filename=f"{policy_id}.safetensors", sha256=digest)
            if existing and existing.get("file_id") is not None:
                self._fs.delete(existing["file_id"])
        now = dt.datetime.now(dt.UTC)
        skip = _ARTIFACT_FIELDS | {"policy_id", "run_dir", "path"}
        record = {k: v for k, v in meta.items() if k not in skip}
        self._coll.update_one(
            {"policy_id": policy_id},
            {
                "$set": {
                    **record,
                    "policy_id": policy_id,
                    "format": FORMAT,
                    "spec": artifact.spec,
                    "signature": artifact.signature,
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

    def load_policy(self, policy_id: str) -> StoredPolicy:
        """Reads a policy's weights, metadata text and signature into memory (unverified).

        Raises:
            InvalidPolicyIdError: On an invalid id (nothing is queried).
            PolicyNotFoundError: Unknown id, missing file, or not a safetensors+JSON policy.
        """
        check_policy_id(policy_id)
        record = self._coll.find_one({"policy_id": policy_id}, {"_id": 0})
        if record is None:
            raise PolicyNotFoundError(f"no RL policy {policy_id!r} in {RL_POLICIES}")
        if record.get("format") != FORMAT:
            raise PolicyNotFoundError(
                f"RL policy {policy_id!r} is not a {FORMAT} policy (format "
                f"{record.get('format')!r}); retrain it, old SB3 zips are not loaded"
            )
        try:
            data = self._fs.get(record["file_id"]).read()
        except gridfs.errors.NoFile as exc:
            raise PolicyNotFoundError(f"RL policy {policy_id!r} has no file in GridFS") from exc
        return StoredPolicy(policy_id, data, record.get("spec"), record.get("signature"))

    def record_metrics(self, policy_id: str, **fields: Any) -> None:
        """Sets metric fields (e.g. ``replay=...``) on a policy's record (not the signed ones)."""
        check_policy_id(policy_id)
        bad = sorted(set(fields) & (_ARTIFACT_FIELDS | {"policy_id"}))
        if bad:
            raise ValueError(f"record_metrics cannot change {bad}")
        self._coll.update_one(
            {"policy_id": policy_id},
            {"$set": {**fields, "updated_at": dt.datetime.now(dt.UTC)}},
        )

    def get(self, policy_id: str) -> dict[str, Any] | None:
        """The policy's record, or None."""
        return self._coll.find_one({"policy_id": check_policy_id(policy_id)}, {"_id": 0})

    def latest(self, **match: Any) -> list[dict[str, Any]]:
        """Records matching ``match``, newest first."""
        return list(self._coll.find(match, {"_id": 0}).sort("created_at", -1))

    def previous_replay(self, symbol: str, *, before: str) -> dict[str, Any] | None:
        """The ``replay`` record of the newest policy of ``symbol`` other than ``before`` that
        has a replay Sharpe (the version before it, for a comparison), or None."""
        record = self._coll.find_one(
            {"symbol": symbol, "policy_id": {"$ne": before}, "replay.sharpe": {"$ne": None}},
            {"_id": 0, "replay": 1},
            sort=[("created_at", -1)],
        )
        return None if record is None else record["replay"]

    def resign(self, policy_id: str, old_key: bytes, new_key: bytes) -> None:
        """Re-sign one policy under ``new_key`` after verifying it under ``old_key``.

        The signature is replaced only if the document still holds the verified one.

        Raises:
            PolicyIntegrityError: If the policy does not verify under ``old_key`` (it is then
                left as it is: re-signing never launders a tampered policy).
        """
        from quant_pipelines.rl.hashing import sign_policy, verify_signature  # torch: lazily

        stored = self.load_policy(policy_id)
        verify_signature(old_key, stored.weights, stored.spec, stored.signature)
        signature = sign_policy(new_key, stored.weights, stored.spec)
        self._coll.update_one(
            {"policy_id": policy_id, "signature": stored.signature, "spec": stored.spec},
            {"$set": {"signature": signature, "updated_at": dt.datetime.now(dt.UTC)}},
        )


def resign_policies(db: Database, old_key: bytes, new_key: bytes) -> dict[str, list[str]]:
    """Re-sign every stored policy after a key rotation.

    Returns:
        ``{"resigned": [...], "refused": [...]}``: ids re-signed under ``new_key``, and ids that
        did not verify under ``old_key`` (or are malformed) and were left unchanged.
    """
    from quant_pipelines.rl.hashing import PolicyIntegrityError  # torch: lazily

    store = GridFSPolicyStore(db)
    out: dict[str, list[str]] = {"resigned": [], "refused": []}
    for doc in db[RL_POLICIES].find({}, {"policy_id": 1}):
        policy_id = doc.get("policy_id")
        try:
            store.resign(policy_id, old_key, new_key)
        except (PolicyIntegrityError, PolicyNotFoundError, InvalidPolicyIdError):
            out["refused"].append(str(policy_id))
        else:
            out["resigned"].append(policy_id)
    return out
