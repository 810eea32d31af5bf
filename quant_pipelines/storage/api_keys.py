"""The ``api_keys`` repository: scoped bearer keys of the HTTP API, stored only as hashes.

A key is ``qp_`` followed by 43 URL-safe characters (``secrets.token_urlsafe(32)``: 256 random
bits). It is shown once, when created; the database keeps its SHA-256 (``key_hash``, unique),
its ``name`` (unique; the actor recorded on what the key does), ``scopes``, ``created_at``,
``last_used_at`` and ``revoked``/``revoked_at``.

Why a plain SHA-256 and no slow KDF (bcrypt, scrypt, argon2): a slow KDF protects *low-entropy*
secrets (passwords) against offline guessing after the hashes leak. A 256-bit random key cannot
be guessed whatever the hash speed (2**255 tries on average), so a fast preimage-resistant hash
gives the same protection, and keeps every authenticated request fast and lookups indexable
(the hash is the lookup key; no per-key salt is needed since keys never repeat).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from quant_pipelines._utils.time import utc, utc_now
from quant_pipelines.storage.collections import API_KEYS

READ, OPTIMIZE_WRITE, ALERTS_WRITE, ADMIN = "read", "optimize:write", "alerts:write", "admin"
#: Every scope a key may have; ``admin`` implies all the others.
SCOPES: tuple[str, ...] = (READ, OPTIMIZE_WRITE, ALERTS_WRITE, ADMIN)
#: Prefix of every key (lets secret scanners recognise a leaked one).
KEY_PREFIX = "qp_"
#: Longest key name.
MAX_NAME_LENGTH = 64


class ApiKeyError(ValueError):
    """An API key operation was refused (invalid name or scope, duplicate name)."""


class ApiKeyNotFoundError(LookupError):
    """No API key has the given name or id."""


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret.

    Attributes:
        key_id: The key's id (``key_`` and 16 hex digits; not secret).
        name: Unique name; the actor recorded on what the key does.
        scopes: Granted scopes.
        created_at: Creation time (UTC).
        last_used_at: Last authenticated use (UTC; updated at most about once a minute).
        revoked: Whether the key was revoked (refused from then on).
        key_hash: SHA-256 hex digest of the key.
    """

    key_id: str
    name: str
    scopes: tuple[str, ...]
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked: bool
    key_hash: str

    def allows(self, scope: str) -> bool:
        """Whether the key grants ``scope`` (``admin`` grants every scope)."""
        return ADMIN in self.scopes or scope in self.scopes


def hash_key(raw_key: str) -> str:
    """SHA-256 hex digest of a raw key (what the database stores and is searched by)."""
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def generate_key() -> str:
    """A fresh random key: ``qp_`` and 256 random bits, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _from_doc(doc: dict[str, Any]) -> ApiKey:
    created = doc["created_at"]
    used = doc.get("last_used_at")
    return ApiKey(
        key_id=doc["_id"],
        name=doc["name"],
        scopes=tuple(doc.get("scopes", ())),
        created_at=utc(created),
        last_used_at=None if used is None else utc(used),
        revoked=bool(doc.get("revoked", False)),
        key_hash=doc["key_hash"],
    )


def _checked_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(scopes))
    if not out:
        raise ApiKeyError(f"a key needs at least one scope (one of: {', '.join(SCOPES)})")
    unknown = [s for s in out if s not in SCOPES]
    if unknown:
        raise ApiKeyError(f"unknown scopes {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    return out


def _checked_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise ApiKeyError(f"a key name is 1 to {MAX_NAME_LENGTH} printable characters")
    return name


def create_key(
    db: Database, name: str, scopes: Sequence[str], *, now: dt.datetime | None = None
) -> tuple[str, ApiKey]:
    """Creates a key; the raw key is returned here and never stored.

    Args:
        db: The project database (indexes ensured: the name and hash are unique).
        name: Unique key name.
        scopes: Scopes from :data:`SCOPES`.
        now: Creation time (default: the clock).

    Returns:
        The raw key (show it once) and the stored record.

    Raises:
        ApiKeyError: Invalid name or scopes, or the name is taken (revoked keys keep theirs).
    """
    name, scopes = _checked_name(name), _checked_scopes(scopes)
    raw = generate_key()
    doc = {
        "_id": "key_" + secrets.token_hex(8),
        "name": name,
        "key_hash": hash_key(raw),
        "scopes": list(scopes),
        "created_at": now or utc_now(),
        "last_used_at": None,
        "revoked": False,
        "revoked_at": None,
    }
    try:
        db[API_KEYS].insert_one(doc)
    except DuplicateKeyError:
        raise ApiKeyError(f"an API key named {name!r} already exists") from None
    return raw, _from_doc(doc)


def list_keys(db: Database) -> list[ApiKey]:
    """Every key (revoked ones too), oldest first."""
    return [_from_doc(d) for d in db[API_KEYS].find({}).sort("created_at", ASCENDING)]


def find_key(db: Database, raw_key: str) -> ApiKey | None:
    """The stored key matching ``raw_key`` (revoked or not), or None.

    The database is searched by hash (an index lookup on a value an attacker cannot steer
    toward a stored hash); the digests are then compared again in constant time.
    """
    digest = hash_key(raw_key)
    doc = db[API_KEYS].find_one({"key_hash": digest})
    if doc is None or not hmac.compare_digest(doc["key_hash"], digest):
        return None
    return _from_doc(doc)


def revoke_key(db: Database, name_or_id: str, *, now: dt.datetime | None = None) -> ApiKey:
    """Revokes the key with this name or id (idempotent).

    Raises:
        ApiKeyNotFoundError: No key has this name or id.
    """
    when = now or utc_now()
    coll = db[API_KEYS]
    query = {"$or": [{"name": name_or_id}, {"_id": name_or_id}]}
    coll.update_one({**query, "revoked": False}, {"$set": {"revoked": True, "revoked_at": when}})
    doc = coll.find_one(query)
    if doc is None:
        raise ApiKeyNotFoundError(f"no API key named or with id {name_or_id!r}")
    return _from_doc(doc)


def touch_key(
    db: Database, key_id: str, *, now: dt.datetime | None = None, min_interval_s: float = 60.0
) -> bool:
    """Sets ``last_used_at``, unless it was set less than ``min_interval_s`` ago.

    Returns:
        Whether the document was updated.
    """
    when = now or utc_now()
    stale = when - dt.timedelta(seconds=min_interval_s)
    result = db[API_KEYS].update_one(
        {"_id": key_id, "$or": [{"last_used_at": None}, {"last_used_at": {"$lte": stale}}]},
        {"$set": {"last_used_at": when}},
    )
    return result.modified_count == 1


def active_key_count(db: Database) -> int:
    """Keys not revoked."""
    return db[API_KEYS].count_documents({"revoked": False})


def any_key_exists(db: Database) -> bool:
    """Whether any key (revoked or not) was ever created."""
    return db[API_KEYS].find_one({}, {"_id": 1}) is not None
