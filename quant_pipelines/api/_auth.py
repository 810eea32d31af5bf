"""Bearer API keys: who is calling (``request.state.principal``) and what they may do.

Every route but ``/healthz`` depends on :func:`require` with a scope: no key or an unknown or
revoked one gets 401 with ``WWW-Authenticate: Bearer``; a key without the scope gets 403.
Validated keys are cached in memory for ``cache_ttl_s`` seconds so that an authenticated
request costs one SHA-256 and a dictionary lookup, not a database round trip; a revocation
therefore takes effect within that time. ``last_used_at`` is written at most once per
``touch_interval_s`` per key.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request
from pymongo.database import Database
from starlette.concurrency import run_in_threadpool

from quant_pipelines.storage.api_keys import (
    ADMIN,
    ALERTS_WRITE,
    OPTIMIZE_WRITE,
    READ,
    find_key,
    hash_key,
    touch_key,
)

__all__ = ["ADMIN", "ALERTS_WRITE", "OPTIMIZE_WRITE", "READ", "KeyVerifier", "Principal"]

#: Longest bearer token considered (a real key is 46 characters).
MAX_TOKEN_LENGTH = 256


@dataclass(frozen=True)
class Principal:
    """The authenticated caller.

    Attributes:
        name: The key's name: the actor recorded on what the caller does.
        scopes: The key's scopes.
        key_id: The key's id.
    """

    name: str
    scopes: tuple[str, ...]
    key_id: str

    def allows(self, scope: str) -> bool:
        """Whether the caller has ``scope`` (``admin`` has every scope)."""
        return ADMIN in self.scopes or scope in self.scopes


def _unauthorized(detail: str, error: str | None = None) -> HTTPException:
    challenge = "Bearer" if error is None else f'Bearer error="{error}"'
    return HTTPException(401, detail=detail, headers={"WWW-Authenticate": challenge})


def bearer_token(request: Request) -> str:
    """The token of ``Authorization: Bearer <token>``.

    Raises:
        HTTPException: 401 when the header is missing or not a bearer token.
    """
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        raise _unauthorized(
            "malformed Authorization header: expected 'Bearer <key>'", "invalid_request"
        )
    return token


class KeyVerifier:
    """Checks bearer keys against the ``api_keys`` collection, with a short in-memory cache.

    Args:
        database: Returns the project database (called in a worker thread).
        cache_ttl_s: How long a validated key is trusted without asking the database again
            (0 disables the cache; a revocation takes effect within this time).
        touch_interval_s: Least time between two ``last_used_at`` writes of one key.
    """

    def __init__(
        self,
        database: Callable[[], Database],
        *,
        cache_ttl_s: float = 5.0,
        touch_interval_s: float = 60.0,
    ) -> None:
        self._database = database
        self.cache_ttl_s = cache_ttl_s
        self.touch_interval_s = touch_interval_s
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def _cached(self, digest: str, now: float) -> Principal | None:
        hit = self._cache.get(digest)
        if hit is None:
            return None
        principal, expires = hit
        if now >= expires:
            self._cache.pop(digest, None)
            return None
        return principal

    def _lookup(self, token: str, digest: str) -> Principal | None:
        """Database lookup (worker thread): the principal of a valid, unrevoked key."""
        key = find_key(self._database(), token)
        if key is None or key.revoked or not hmac.compare_digest(key.key_hash, digest):
            return None
        return Principal(name=key.name, scopes=key.scopes, key_id=key.key_id)

    def _touch(self, key_id: str) -> None:
        touch_key(self._database(), key_id, min_interval_s=self.touch_interval_s)

    async def authenticate(self, request: Request) -> Principal:
        """The principal of the request's bearer key.

        Raises:
            HTTPException: 401 without a valid, unrevoked key.
        """
        token = bearer_token(request)
        digest = hash_key(token)
        now = time.monotonic()
        principal = self._cached(digest, now)
        if principal is None:
            principal = await run_in_threadpool(self._lookup, token, digest)
            if principal is None:
                raise _unauthorized("invalid or revoked API key", "invalid_token")
            if self.cache_ttl_s > 0:
                with self._lock:
                    self._cache[digest] = (principal, now + self.cache_ttl_s)
        last = self._touched.get(principal.key_id)
        if last is None or now - last >= self.touch_interval_s:
            self._touched[principal.key_id] = now
            await run_in_threadpool(self._touch, principal.key_id)
        return principal


def require(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: authenticates the request and checks ``scope``.

    The principal is put on ``request.state.principal`` and returned.

    Raises:
        HTTPException: 401 without a valid key, 403 when the key lacks ``scope``.
    """

    async def dependency(request: Request) -> Principal:
        verifier: KeyVerifier = request.app.state.keys
        principal = await verifier.authenticate(request)
        request.state.principal = principal
        if not principal.allows(scope):
            raise HTTPException(403, detail=f"API key {principal.name!r} lacks the {scope!r} scope")
        return principal

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency


#: Dependencies of the routes, by scope.
require_read = require(READ)
require_optimize_write = require(OPTIMIZE_WRITE)
require_alerts_write = require(ALERTS_WRITE)
