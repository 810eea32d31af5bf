"""Secrets kept in files that only their owner can read (mode 0600).

Credentials and keys the project provisions for itself (the embedded MongoDB's users, the
policy signing key, the first API key of ``make dev``) live under ``DAGSTER_HOME`` in such
files. Reading one whose mode lets the group or others in is refused: a secret that anyone on
the machine could have read, or replaced, is not one.
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
from pathlib import Path


class InsecureFileError(PermissionError):
    """A secret file is readable or writable by someone other than its owner."""


def write_owner_only(path: str | Path, text: str) -> Path:
    """Writes ``text`` to ``path`` atomically with mode 0600 (parent folder 0700 if created).

    The content never exists on disk with a wider mode: the temporary file is created 0600 in
    the same folder and renamed over ``path``.
    """
    path = Path(path)
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_owner_only(path: str | Path) -> str:
    """Reads a secret file, refusing one that the group or others may read or write.

    Raises:
        FileNotFoundError: If the file does not exist.
        InsecureFileError: If its mode grants any permission beyond the owner's, or it is not
            owned by the current user.
    """
    path = Path(path)
    info = path.stat()
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise InsecureFileError(
            f"{path} has mode {stat.S_IMODE(info.st_mode):04o}; secrets must be owner-only "
            f"(chmod 600 {path})"
        )
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise InsecureFileError(f"{path} is not owned by the current user")
    return path.read_text(encoding="utf-8")


def new_secret(nbytes: int = 32) -> str:
    """A random URL-safe secret of ``nbytes`` bytes of entropy."""
    return secrets.token_urlsafe(nbytes)
