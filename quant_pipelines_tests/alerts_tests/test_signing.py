"""The verification helper: what a receiver runs on every webhook it gets."""

from __future__ import annotations

import time

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant_pipelines.alerts import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    compute_signature,
    signature_headers,
    verify_signature,
)
from quant_pipelines.settings import Secret
from quant_pipelines_tests.alerts_tests._support import SECRET

BODY = b'{"symbol":"AAPL","severity":"critical","score":0.91}'
KEY = "webhook:9f52aa"


def _headers(body: bytes = BODY, secret=SECRET, *, key: str = KEY, **kwargs) -> dict[str, str]:
    return signature_headers(body, secret, idempotency_key=key, **kwargs)


def _reason(body: bytes, headers: dict, secret: str = SECRET, **kwargs) -> str:
    with pytest.raises(SignatureError) as info:
        verify_signature(body, headers, secret, **kwargs)
    return info.value.reason


def test_a_correctly_signed_body_verifies_and_returns_its_timestamp() -> None:
    headers = _headers(timestamp=1_700_000_000)
    assert verify_signature(BODY, headers, SECRET, now=1_700_000_010) == 1_700_000_000
    assert headers[SIGNATURE_HEADER].startswith("v2=")
    assert len(headers[SIGNATURE_HEADER]) == len("v2=") + 64
    assert headers[IDEMPOTENCY_HEADER] == KEY


def test_tampered_body_is_rejected() -> None:
    headers = _headers()
    tampered = BODY.replace(b"0.91", b"0.19")
    assert _reason(tampered, headers) == "mismatch"


def test_wrong_secret_is_rejected_with_a_clear_message() -> None:
    headers = _headers()
    with pytest.raises(SignatureError, match="altered, or the secret is wrong"):
        verify_signature(BODY, headers, "another-secret")


def test_timestamp_older_than_the_tolerance_is_rejected() -> None:
    now = time.time()
    old = _headers(timestamp=int(now) - 301)
    assert _reason(BODY, old, now=now) == "stale"
    with pytest.raises(SignatureError, match="stale timestamp"):
        verify_signature(BODY, old, SECRET, now=now)
    recent = _headers(timestamp=int(now) - 299)
    verify_signature(BODY, recent, SECRET, now=now)  # within the default 300 s
    assert _reason(BODY, recent, now=now, tolerance_s=60) == "stale"


def test_timestamp_far_in_the_future_is_rejected() -> None:
    future = _headers(timestamp=int(time.time()) + 3600)
    assert _reason(BODY, future) == "future"


def test_changing_the_timestamp_header_breaks_the_signature() -> None:
    headers = _headers()
    headers[TIMESTAMP_HEADER] = str(int(headers[TIMESTAMP_HEADER]) + 1)
    assert _reason(BODY, headers) == "mismatch"


@pytest.mark.parametrize("missing", [TIMESTAMP_HEADER, SIGNATURE_HEADER, IDEMPOTENCY_HEADER])
def test_missing_header_is_rejected(missing: str) -> None:
    headers = _headers()
    del headers[missing]
    with pytest.raises(SignatureError, match=f"missing header {missing}") as info:
        verify_signature(BODY, headers, SECRET)
    assert info.value.reason == "missing_header"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (TIMESTAMP_HEADER, "yesterday"),
        (SIGNATURE_HEADER, "md5=abc"),
        (SIGNATURE_HEADER, "abc"),
        (IDEMPOTENCY_HEADER, "a\nb"),
    ],
)
def test_malformed_header_is_rejected(name: str, value: str) -> None:
    headers = _headers()
    headers[name] = value
    assert _reason(BODY, headers) == "malformed"


def test_header_names_are_case_insensitive_and_any_mapping_works() -> None:
    headers = {k.lower(): v for k, v in _headers().items()}
    verify_signature(BODY, headers, SECRET)
    verify_signature(BODY, httpx.Headers(headers), SECRET)
    verify_signature(BODY.decode(), headers, Secret(SECRET))


def test_secret_rotation_accepts_any_listed_signature() -> None:
    ts = int(time.time())
    old = compute_signature(BODY, "old-secret", ts, idempotency_key=KEY)
    new = compute_signature(BODY, SECRET, ts, idempotency_key=KEY)
    headers = {TIMESTAMP_HEADER: str(ts), IDEMPOTENCY_HEADER: KEY, SIGNATURE_HEADER: f"{old},{new}"}
    verify_signature(BODY, headers, SECRET)
    verify_signature(BODY, headers, "old-secret")
    assert _reason(BODY, headers, secret="third") == "mismatch"


def test_an_empty_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="ALERT_WEBHOOK_SECRET"):
        verify_signature(BODY, _headers(), "")
    with pytest.raises(ValueError, match="empty"):
        _headers(secret=Secret(""))


@settings(max_examples=60, deadline=None)
@given(
    body=st.binary(min_size=1, max_size=256),
    secret=st.text(min_size=1, max_size=40),
    position=st.integers(min_value=0),
    flip=st.integers(min_value=1, max_value=255),
)
def test_any_single_byte_change_is_detected(
    body: bytes, secret: str, position: int, flip: int
) -> None:
    headers = _headers(body, secret)
    assert verify_signature(body, headers, secret) == int(headers[TIMESTAMP_HEADER])
    i = position % len(body)
    tampered = body[:i] + bytes([body[i] ^ flip]) + body[i + 1 :]
    with pytest.raises(SignatureError) as info:
        verify_signature(tampered, headers, secret)
    assert info.value.reason == "mismatch"


def test_a_new_idempotency_key_breaks_the_signature() -> None:
    """A captured request replayed within the tolerance under a fresh key is refused."""
    headers = _headers()
    verify_signature(BODY, headers, SECRET)
    replay = dict(headers) | {IDEMPOTENCY_HEADER: KEY + "-replay"}
    assert _reason(BODY, replay) == "mismatch"
    # Moving bytes between the key and the body does not verify either.
    shifted = dict(headers) | {IDEMPOTENCY_HEADER: KEY[:-1]}
    assert _reason(KEY[-1].encode() + b"\n" + BODY, shifted) == "mismatch"


def test_the_v1_scheme_over_timestamp_and_body_is_refused() -> None:
    """A v1 signature (HMAC of "<ts>.<body>", no key) no longer verifies, with a clear hint."""
    import hashlib
    import hmac

    ts = int(time.time())
    v1 = hmac.new(SECRET.encode(), f"{ts}.".encode() + BODY, hashlib.sha256).hexdigest()
    headers = {TIMESTAMP_HEADER: str(ts), IDEMPOTENCY_HEADER: KEY, SIGNATURE_HEADER: f"sha256={v1}"}
    with pytest.raises(SignatureError, match="v1 'sha256=' scheme is no longer accepted") as info:
        verify_signature(BODY, headers, SECRET)
    assert info.value.reason == "malformed"


def test_the_signature_is_an_hmac_of_version_timestamp_key_and_body() -> None:
    """The documented construction, recomputed independently (what receivers implement)."""
    import hashlib
    import hmac

    headers = _headers(timestamp=1_700_000_000)
    message = b"v2\n1700000000\n" + KEY.encode() + b"\n" + BODY
    digest = hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"v2={digest}"


def test_a_key_with_a_line_break_cannot_be_signed() -> None:
    with pytest.raises(ValueError, match="line break"):
        _headers(key="a\nb")
    with pytest.raises(ValueError, match="empty"):
        _headers(key="")
