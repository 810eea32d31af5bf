"""HMAC-SHA256 signatures of webhook bodies, and the helper receivers use to verify them.

The signature covers ``f"{timestamp}.{body}"``, so a captured request cannot be replayed once
its timestamp is older than the receiver's tolerance, and neither part can be altered.

Headers sent with every webhook::

    X-QP-Timestamp: 1717000000
    X-QP-Signature: sha256=<hex HMAC-SHA256(secret, b"1717000000." + body)>
    Idempotency-Key: <one key per alert and channel; identical on every retry>
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time
from collections.abc import Mapping

from quant_pipelines.settings import Secret

TIMESTAMP_HEADER = "X-QP-Timestamp"
SIGNATURE_HEADER = "X-QP-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SCHEME = "sha256="
DEFAULT_TOLERANCE_S = 300


class SignatureError(ValueError):
    """A webhook signature was rejected.

    Attributes:
        reason: Machine-readable cause: ``missing_header``, ``malformed``, ``mismatch``
            (the body was altered or the secret is wrong), ``stale`` or ``future``.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _secret_bytes(secret: str | bytes | Secret) -> bytes:
    value = secret.get() if isinstance(secret, Secret) else secret
    raw = value.encode() if isinstance(value, str) else bytes(value)
    if not raw:
        raise ValueError("the webhook secret is empty; set ALERT_WEBHOOK_SECRET")
    return raw


def compute_signature(body: bytes, secret: str | bytes | Secret, timestamp: int | str) -> str:
    """The ``X-QP-Signature`` value for ``body`` sent at ``timestamp``.

    Args:
        body: The exact bytes of the request body.
        secret: The shared secret.
        timestamp: Unix seconds, as sent in ``X-QP-Timestamp``.

    Returns:
        ``"sha256=" + hex digest``.
    """
    message = str(timestamp).encode() + b"." + body
    return SCHEME + hmac.new(_secret_bytes(secret), message, hashlib.sha256).hexdigest()


def signature_headers(
    body: bytes, secret: str | bytes | Secret, *, timestamp: int | None = None
) -> dict[str, str]:
    """The timestamp and signature headers for ``body`` (timestamp defaults to now)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: compute_signature(body, secret, ts)}


def _now_s(now: float | dt.datetime | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, dt.datetime):
        return (now if now.tzinfo else now.replace(tzinfo=dt.UTC)).timestamp()
    return float(now)


def verify_signature(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str | bytes | Secret,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | dt.datetime | None = None,
) -> int:
    """Checks a received webhook; call it on the raw body, before parsing the JSON.

    Args:
        body: The raw request body, exactly as received.
        headers: The request headers (any mapping; names are matched case-insensitively).
        secret: The shared secret.
        tolerance_s: Maximum age (and clock skew into the future) of the timestamp.
        now: Current time as Unix seconds or a datetime (default: the clock).

    Returns:
        The verified timestamp (Unix seconds).

    Raises:
        SignatureError: A header is missing or malformed, the signature does not match the
            body and secret, or the timestamp is outside the tolerance.
        ValueError: ``secret`` is empty.
    """
    raw = body.encode() if isinstance(body, str) else bytes(body)
    key = _secret_bytes(secret)
    lowered = {str(k).lower(): v for k, v in headers.items()}
    ts_raw = lowered.get(TIMESTAMP_HEADER.lower())
    sig_raw = lowered.get(SIGNATURE_HEADER.lower())
    for name, value in ((TIMESTAMP_HEADER, ts_raw), (SIGNATURE_HEADER, sig_raw)):
        if not value:
            raise SignatureError(f"missing header {name}", reason="missing_header")
    try:
        ts = int(str(ts_raw).strip())
    except ValueError:
        raise SignatureError(
            f"malformed {TIMESTAMP_HEADER}: not an integer", reason="malformed"
        ) from None
    candidates = [s.strip() for s in str(sig_raw).split(",")]
    digests = [s[len(SCHEME) :] for s in candidates if s.startswith(SCHEME)]
    if not digests:
        raise SignatureError(
            f"malformed {SIGNATURE_HEADER}: expected 'sha256=<hex>'", reason="malformed"
        )
    expected = compute_signature(raw, key, ts)[len(SCHEME) :].encode()
    # Every candidate is compared (no early exit), each in constant time.
    matches = [hmac.compare_digest(expected, d.encode()) for d in digests]
    if not any(matches):
        raise SignatureError(
            "signature mismatch: the body was altered or the secret is wrong", reason="mismatch"
        )
    age = _now_s(now) - ts
    if age > tolerance_s:
        raise SignatureError(
            f"stale timestamp: {age:.0f} s old, tolerance {tolerance_s:.0f} s", reason="stale"
        )
    if -age > tolerance_s:
        raise SignatureError(
            f"timestamp {-age:.0f} s in the future, tolerance {tolerance_s:.0f} s", reason="future"
        )
    return ts
