"""HMAC-SHA256 signatures of webhook requests, and the helper receivers use to verify them.

Scheme ``v2``: the signature covers the timestamp, the ``Idempotency-Key`` header and the body::

    signed = b"v2\n" + timestamp + b"\n" + idempotency_key + b"\n" + body

Neither part can be altered, a captured request cannot be replayed once its timestamp is older
than the receiver's tolerance, and it cannot be replayed *within* the tolerance under a new
``Idempotency-Key`` (which a receiver that deduplicates on the key would accept as a new
alert). The fields are separated by newlines, which an HTTP header value cannot contain, so the
split is unambiguous.

Headers sent with every webhook::

    X-QP-Timestamp: 1717000000
    Idempotency-Key: <one key per alert and channel; identical on every retry>
    X-QP-Signature: v2=<hex HMAC-SHA256(secret, b"v2\n1717000000\n" + key + b"\n" + body)>

The v1 scheme (``sha256=``, over timestamp and body only) is no longer produced nor accepted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time
from collections.abc import Mapping

from quant_pipelines._utils.time import utc
from quant_pipelines.settings import Secret

TIMESTAMP_HEADER = "X-QP-Timestamp"
SIGNATURE_HEADER = "X-QP-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
VERSION = "v2"
SCHEME = f"{VERSION}="
#: The prefix of the retired v1 scheme, named in the error that refuses it.
_V1_SCHEME = "sha256="
DEFAULT_TOLERANCE_S = 300


class SignatureError(ValueError):
    """A webhook signature was rejected.

    Attributes:
        reason: Machine-readable cause: ``missing_header``, ``malformed``, ``mismatch``
            (the body, timestamp or Idempotency-Key was altered, or the secret is wrong),
            ``stale`` or ``future``.
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


def _check_key(idempotency_key: str) -> bytes:
    key = str(idempotency_key)
    if not key:
        raise ValueError("the Idempotency-Key is empty; every webhook carries one")
    if "\n" in key or "\r" in key:
        raise ValueError("the Idempotency-Key must not contain a line break")
    return key.encode()


def signed_message(body: bytes, timestamp: int | str, idempotency_key: str) -> bytes:
    """The exact bytes the v2 signature covers.

    Args:
        body: The exact bytes of the request body.
        timestamp: Unix seconds, as sent in ``X-QP-Timestamp``.
        idempotency_key: The ``Idempotency-Key`` header value.

    Returns:
        ``b"v2\n<timestamp>\n<idempotency_key>\n" + body``.

    Raises:
        ValueError: The key is empty or contains a line break.
    """
    head = f"{VERSION}\n{timestamp}\n".encode()
    return head + _check_key(idempotency_key) + b"\n" + bytes(body)


def compute_signature(
    body: bytes, secret: str | bytes | Secret, timestamp: int | str, *, idempotency_key: str
) -> str:
    """The ``X-QP-Signature`` value for ``body`` sent at ``timestamp`` under ``idempotency_key``.

    Args:
        body: The exact bytes of the request body.
        secret: The shared secret.
        timestamp: Unix seconds, as sent in ``X-QP-Timestamp``.
        idempotency_key: The ``Idempotency-Key`` header value.

    Returns:
        ``"v2=" + hex digest``.
    """
    message = signed_message(body, timestamp, idempotency_key)
    return SCHEME + hmac.new(_secret_bytes(secret), message, hashlib.sha256).hexdigest()


def signature_headers(
    body: bytes,
    secret: str | bytes | Secret,
    *,
    idempotency_key: str,
    timestamp: int | None = None,
) -> dict[str, str]:
    """The timestamp, Idempotency-Key and signature headers for ``body`` (time defaults to now).

    Args:
        body: The exact bytes of the request body.
        secret: The shared secret.
        idempotency_key: The request's ``Idempotency-Key`` (signed, and returned as a header).
        timestamp: Unix seconds (default: the clock).

    Returns:
        ``{X-QP-Timestamp, Idempotency-Key, X-QP-Signature}``.
    """
    ts = int(time.time()) if timestamp is None else int(timestamp)
    signature = compute_signature(body, secret, ts, idempotency_key=idempotency_key)
    return {
        TIMESTAMP_HEADER: str(ts),
        IDEMPOTENCY_HEADER: str(idempotency_key),
        SIGNATURE_HEADER: signature,
    }


def _now_s(now: float | dt.datetime | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, dt.datetime):
        return utc(now).timestamp()
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

    The signature must match the timestamp, the ``Idempotency-Key`` header and the body as
    received: changing any of them, or replaying the request under a new key, is refused.

    Args:
        body: The raw request body, exactly as received.
        headers: The request headers (any mapping; names are matched case-insensitively).
        secret: The shared secret.
        tolerance_s: Maximum age (and clock skew into the future) of the timestamp.
        now: Current time as Unix seconds or a datetime (default: the clock).

    Returns:
        The verified timestamp (Unix seconds).

    Raises:
        SignatureError: A header is missing or malformed (a v1 ``sha256=`` signature counts
            as malformed), the signature does not match the timestamp, key, body and secret,
            or the timestamp is outside the tolerance.
        ValueError: ``secret`` is empty.
    """
    raw = body.encode() if isinstance(body, str) else bytes(body)
    secret_key = _secret_bytes(secret)
    lowered = {str(k).lower(): v for k, v in headers.items()}
    ts_raw = lowered.get(TIMESTAMP_HEADER.lower())
    sig_raw = lowered.get(SIGNATURE_HEADER.lower())
    key_raw = lowered.get(IDEMPOTENCY_HEADER.lower())
    for name, value in (
        (TIMESTAMP_HEADER, ts_raw),
        (IDEMPOTENCY_HEADER, key_raw),
        (SIGNATURE_HEADER, sig_raw),
    ):
        if not value:
            raise SignatureError(f"missing header {name}", reason="missing_header")
    try:
        ts = int(str(ts_raw).strip())
    except ValueError:
        raise SignatureError(
            f"malformed {TIMESTAMP_HEADER}: not an integer", reason="malformed"
        ) from None
    key = str(key_raw)
    if "\n" in key or "\r" in key:
        raise SignatureError(f"malformed {IDEMPOTENCY_HEADER}", reason="malformed")
    candidates = [s.strip() for s in str(sig_raw).split(",")]
    digests = [s[len(SCHEME) :] for s in candidates if s.startswith(SCHEME)]
    if not digests:
        v1 = any(s.startswith(_V1_SCHEME) for s in candidates)
        hint = " (the v1 'sha256=' scheme is no longer accepted)" if v1 else ""
        raise SignatureError(
            f"malformed {SIGNATURE_HEADER}: expected '{SCHEME}<hex>'{hint}", reason="malformed"
        )
    expected = compute_signature(raw, secret_key, ts, idempotency_key=key)[len(SCHEME) :]
    # Every candidate is compared (no early exit), each in constant time.
    matches = [hmac.compare_digest(expected.encode(), d.encode()) for d in digests]
    if not any(matches):
        raise SignatureError(
            "signature mismatch: the body, timestamp or Idempotency-Key was altered, "
            "or the secret is wrong",
            reason="mismatch",
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
