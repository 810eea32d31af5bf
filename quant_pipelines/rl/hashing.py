"""Integrity checks for policy files: hash before Stable-Baselines3 opens the zip.

An SB3 ``.zip`` holds cloudpickled objects, so loading an untrusted file can run code. A policy
is therefore loaded only through :func:`verify_and_load`: it reads the file's bytes once, checks
their SHA-256 against the hash recorded when the policy was saved (``rl_policies.sha256``), and
hands SB3 the *verified bytes* (not the path, which could change between the check and the open).
A mismatch raises :class:`PolicyIntegrityError` before SB3 sees anything.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import re
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm

from quant_pipelines.rl._algos import algo_class

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class PolicyIntegrityError(Exception):
    """A policy file does not match its recorded SHA-256 (or no valid hash was given)."""


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


def verify_bytes(path: str | Path, expected_sha256: str) -> bytes:
    """Read a file and return its bytes if their SHA-256 is ``expected_sha256``.

    Raises:
        PolicyIntegrityError: If the expected hash is not 64 hex digits or does not match.
    """
    expected = str(expected_sha256 or "").strip().lower()
    if not _HEX64.match(expected):
        raise PolicyIntegrityError(
            f"refusing to load {path}: expected a 64-hex-digit SHA-256, got {expected_sha256!r}"
        )
    data = Path(path).read_bytes()
    actual = sha256_bytes(data)
    if not hmac.compare_digest(actual, expected):
        raise PolicyIntegrityError(
            f"refusing to load {path}: SHA-256 {actual} does not match the recorded {expected}"
        )
    return data


def verify_and_load(
    path: str | Path,
    expected_sha256: str,
    algo: str,
    *,
    env: Any = None,
    device: str = "cpu",
) -> BaseAlgorithm:
    """Check a policy file's SHA-256, then load it with Stable-Baselines3.

    Args:
        path: The policy ``.zip``.
        expected_sha256: The hash recorded when the policy was saved (from a trusted record).
        algo: "ppo", "a2c", "dqn" or "sac".
        env: Optional env to attach to the loaded model (needed to continue training).
        device: Torch device.

    Returns:
        The loaded SB3 model.

    Raises:
        PolicyIntegrityError: If the hash is missing, malformed or different; nothing of the
            file has been deserialised then.
    """
    data = verify_bytes(path, expected_sha256)
    cls = algo_class(algo)
    return cls.load(io.BytesIO(data), env=env, device=device)
