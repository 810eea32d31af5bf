"""Hashes, HMAC signatures and ids of stored policies.

A stored policy is two byte strings: its network weights (safetensors) and its metadata (a
canonical JSON text, see :mod:`quant_pipelines.rl._spec`). Its signature is

    HMAC-SHA256(key, b"qp-rl-policy/1\\0" + sha256(weights).hex() + b"\\0" + metadata_json)

with a key that never lives in the policy database (the caller passes it in as bytes).
:func:`verify_signature` recomputes the weights' hash from the bytes actually read, so a hash
stored next to the weights is never trusted, and it runs before anything is parsed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DOMAIN = b"qp-rl-policy/1\x00"
MIN_KEY_BYTES = 32

#: Policy ids: a letter or digit, then letters, digits, ``_``, ``.``, ``-`` (no ``..``); at most
#: 128 characters. ``storage.policies`` enforces the same pattern on its side.
POLICY_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class PolicyIntegrityError(Exception):
    """A stored policy is not what was signed (or has no valid signature or id)."""


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, *, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks.

    Args:
        path: The file.
        chunk_size: Bytes per read.

    Returns:
        The lowercase hex digest (64 characters).
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def check_policy_id(policy_id: object) -> str:
    """Return ``policy_id`` if it matches :data:`POLICY_ID_PATTERN` and has no ``..``.

    Raises:
        PolicyIntegrityError: Otherwise (a path-like or oversized id is never used).
    """
    if (
        not isinstance(policy_id, str)
        or not POLICY_ID_PATTERN.fullmatch(policy_id)
        or ".." in policy_id
    ):
        raise PolicyIntegrityError(
            f"invalid policy id {policy_id!r}: expected {POLICY_ID_PATTERN.pattern} without '..'"
        )
    return policy_id


def _check_key(key: object) -> bytes:
    if not isinstance(key, bytes | bytearray) or len(key) < MIN_KEY_BYTES:
        raise PolicyIntegrityError(
            f"a policy signing key of at least {MIN_KEY_BYTES} bytes is required "
            "(QP_POLICY_SIGNING_KEY or $DAGSTER_HOME/secrets/policy_signing.key)"
        )
    return bytes(key)


def signing_message(weights_sha256: str, spec_json: str) -> bytes:
    """The bytes a policy signature covers: the weights' hash and the metadata JSON."""
    return _DOMAIN + weights_sha256.encode("ascii") + b"\x00" + spec_json.encode("utf-8")


def sign_policy(key: bytes, weights: bytes, spec_json: str) -> str:
    """Hex HMAC-SHA256 signature of a policy's weights and canonical metadata JSON.

    Raises:
        PolicyIntegrityError: If the key is missing or shorter than :data:`MIN_KEY_BYTES`.
    """
    message = signing_message(sha256_bytes(weights), spec_json)
    return hmac.new(_check_key(key), message, hashlib.sha256).hexdigest()


def verify_signature(key: bytes, weights: object, spec_json: object, signature: object) -> None:
    """Check a stored policy's signature before anything of it is parsed.

    Only types are looked at here: the weights must be bytes, the metadata a string, the
    signature 64 lowercase hex digits; then the HMAC is recomputed from the bytes given and
    compared in constant time.

    Raises:
        PolicyIntegrityError: On a missing, malformed or different signature.
    """
    if not isinstance(weights, bytes) or not isinstance(spec_json, str):
        raise PolicyIntegrityError("refusing policy: weights must be bytes and metadata a str")
    if not isinstance(signature, str) or not _HEX64.match(signature):
        raise PolicyIntegrityError(
            f"refusing policy: expected a 64-hex-digit HMAC-SHA256 signature, got {signature!r}"
        )
    expected = sign_policy(key, weights, spec_json)
    if not hmac.compare_digest(expected, signature):
        raise PolicyIntegrityError(
            "refusing policy: its HMAC-SHA256 signature does not verify (weights or metadata "
            "changed since signing, or signed with another key); nothing was parsed"
        )
