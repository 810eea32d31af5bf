"""Console sign-in sessions, kept server-side in MongoDB (``console_sessions``, with a TTL).

An analyst signs in with an API key once; the console answers with a random session token in
an HttpOnly, SameSite=Strict cookie. The key itself is never stored in the cookie, in the
session document or in any page. The database keeps only the token's SHA-256 (the document's
``_id``), so a dump of ``console_sessions`` yields no usable cookie; each session also holds
its own CSRF token. A session ends when it expires (checked on every request; the TTL index
deletes the document within about a minute of expiry), when the analyst signs out, or when
its API key is revoked (seen within the key cache's few seconds, as for bearer requests).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pymongo.database import Database

from quant_pipelines._utils.time import utc, utc_now
from quant_pipelines.storage.api_keys import ADMIN, ALERTS_WRITE, READ, ApiKey
from quant_pipelines.storage.collections import API_KEYS

#: The sessions collection (server-side state of the console only).
CONSOLE_SESSIONS = "console_sessions"
#: Default session lifetime: one working day.
DEFAULT_SESSION_TTL_S = 8 * 3600
#: Longest cookie value considered (a real token is 43 characters).
MAX_TOKEN_LENGTH = 128


@dataclass(frozen=True)
class ConsoleUser:
    """The signed-in analyst.

    Attributes:
        name: The API key's name: the actor recorded on what the analyst does.
        key_id: The key's id.
        scopes: The key's scopes.
        csrf: The session's CSRF token (every form carries it).
        expires_at: When the session ends (UTC).
    """

    name: str
    key_id: str
    scopes: tuple[str, ...]
    csrf: str
    expires_at: dt.datetime

    def allows(self, scope: str) -> bool:
        """Whether the key grants ``scope`` (``admin`` grants every scope)."""
        return ADMIN in self.scopes or scope in self.scopes

    @property
    def can_act(self) -> bool:
        """May acknowledge, resolve and mark false positive (``alerts:write``)."""
        return self.allows(ALERTS_WRITE)

    @property
    def can_view(self) -> bool:
        """May open the console: a ``read`` or an ``alerts:write`` key."""
        return self.allows(READ) or self.allows(ALERTS_WRITE)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class SessionStore:
    """Creates, finds and ends console sessions.

    Args:
        database: Returns the project database (called in a worker thread).
        ttl_s: Session lifetime in seconds (absolute, from sign-in).
        key_cache_ttl_s: How long a key's revocation state is trusted without a lookup.
    """

    def __init__(
        self,
        database: Callable[[], Database],
        *,
        ttl_s: float = DEFAULT_SESSION_TTL_S,
        key_cache_ttl_s: float = 5.0,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError(f"the session lifetime must be positive, got {ttl_s}")
        self._database = database
        self.ttl_s = ttl_s
        self.key_cache_ttl_s = key_cache_ttl_s
        self._indexed = False
        self._keys: dict[str, tuple[bool, tuple[str, ...], float]] = {}
        self._lock = threading.Lock()

    def _coll(self):
        coll = self._database()[CONSOLE_SESSIONS]
        if not self._indexed:
            coll.create_index("expires_at", expireAfterSeconds=0, name="ttl_expires_at")
            self._indexed = True
        return coll

    def create(self, key: ApiKey, *, now: dt.datetime | None = None) -> tuple[str, ConsoleUser]:
        """Opens a session for a validated key.

        Returns:
            The session token (the cookie value; not stored) and the user.
        """
        now = utc(now) if now else utc_now()
        token = secrets.token_urlsafe(32)
        expires = now + dt.timedelta(seconds=self.ttl_s)
        user = ConsoleUser(key.name, key.key_id, key.scopes, secrets.token_urlsafe(32), expires)
        self._coll().insert_one(
            {
                "_id": _digest(token),
                "key_id": key.key_id,
                "name": key.name,
                "csrf": user.csrf,
                "created_at": now,
                "expires_at": expires,
            }
        )
        return token, user

    def _key_state(self, key_id: str) -> tuple[bool, tuple[str, ...]] | None:
        """(revoked, scopes) of a key, cached briefly; None when the key no longer exists."""
        now = time.monotonic()
        hit = self._keys.get(key_id)
        if hit is not None and now < hit[2]:
            return hit[0], hit[1]
        doc = self._database()[API_KEYS].find_one({"_id": key_id}, {"revoked": 1, "scopes": 1})
        if doc is None:
            return None
        state = (bool(doc.get("revoked", False)), tuple(doc.get("scopes", ())))
        if self.key_cache_ttl_s > 0:
            with self._lock:
                self._keys[key_id] = (*state, now + self.key_cache_ttl_s)
        return state

    def get(self, token: str | None, *, now: dt.datetime | None = None) -> ConsoleUser | None:
        """The user of a live session, or None (no, unknown, expired or revoked session)."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        coll = self._coll()
        doc = coll.find_one({"_id": _digest(token)})
        if doc is None:
            return None
        now = utc(now) if now else utc_now()
        expires = utc(doc["expires_at"])
        key = self._key_state(doc["key_id"])
        if expires <= now or key is None or key[0]:
            coll.delete_one({"_id": doc["_id"]})
            return None
        return ConsoleUser(doc["name"], doc["key_id"], key[1], doc["csrf"], expires)

    def end(self, token: str | None) -> None:
        """Ends a session (sign-out); unknown tokens are ignored."""
        if token and len(token) <= MAX_TOKEN_LENGTH:
            self._coll().delete_one({"_id": _digest(token)})
