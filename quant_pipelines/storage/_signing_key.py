"""The key that signs stored RL policies: never in MongoDB.

It comes from the environment variable ``QP_POLICY_SIGNING_KEY`` (production: a secret store
injects it), else from the owner-only file ``$DAGSTER_HOME/secrets/policy_signing.key``, which is
created with a fresh random secret on first use. Whoever can write the policy database cannot
forge a signature without it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path

from quant_pipelines.owner_files import new_secret, read_owner_only, write_owner_only
from quant_pipelines.settings import load_settings

KEY_ENV = "QP_POLICY_SIGNING_KEY"
KEY_FILE = Path("secrets") / "policy_signing.key"
MIN_KEY_CHARS = 32


def policy_signing_key_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the key file lives: ``$DAGSTER_HOME/secrets/policy_signing.key``."""
    return load_settings(env).dagster_home / KEY_FILE


def _checked(text: str, source: str) -> bytes:
    key = text.strip()
    if len(key) < MIN_KEY_CHARS:
        raise ValueError(
            f"the policy signing key from {source} has {len(key)} characters; at least "
            f"{MIN_KEY_CHARS} are required (e.g. python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))')"
        )
    return key.encode("utf-8")


def policy_signing_key(env: Mapping[str, str] | None = None) -> bytes:
    """The policy signing key as bytes.

    Args:
        env: A mapping to read instead of ``os.environ`` (tests pass their own).

    Returns:
        ``QP_POLICY_SIGNING_KEY`` when set, else the content of the owner-only key file under
        ``DAGSTER_HOME`` (created 0600 with a random 256-bit secret when absent; two processes
        creating it at once end up with the same key, the file is never overwritten).

    Raises:
        ValueError: If the key is shorter than 32 characters.
        InsecureFileError: If the key file is readable or writable by group/others, or is not
            owned by the current user.
    """
    env = os.environ if env is None else env
    from_env = env.get(KEY_ENV, "")
    if from_env.strip():
        return _checked(from_env, KEY_ENV)
    path = policy_signing_key_path(env)
    if not path.exists():
        tmp = write_owner_only(path.with_name(f".{path.name}.{uuid.uuid4().hex}"), new_secret(32))
        try:
            os.link(tmp, path)  # atomic and never replaces a key another process created
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return _checked(read_owner_only(path), str(path))
