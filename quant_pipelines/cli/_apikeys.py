"""``quant-pipelines api-keys create|list|revoke`` and the start-up checks of ``api``.

Keys are printed once, by ``create``; the database keeps only their SHA-256. On ``api``
start with no key at all in the database, an admin key named ``local-admin`` is created and
written to an owner-only file under ``DAGSTER_HOME`` (its path is printed, never the key).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from quant_pipelines.cli._bind import PUBLIC_FLAG, check_bind, is_loopback

if TYPE_CHECKING:
    from pymongo.database import Database

#: Name of the key created on first start.
BOOTSTRAP_KEY_NAME = "local-admin"
#: Where that key is written, relative to ``DAGSTER_HOME`` (mode 0600).
BOOTSTRAP_KEY_FILE = Path("api") / "local-admin.key"


def _database() -> Database:
    from quant_pipelines.cli import _database

    return _database()


def _fmt(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else "-"


def cmd_api_keys(args: argparse.Namespace) -> int:
    """``api-keys create|list|revoke``: manage the API's bearer keys."""
    from quant_pipelines.storage import MongoUnavailableError
    from quant_pipelines.storage.api_keys import (
        ApiKeyError,
        ApiKeyNotFoundError,
        create_key,
        list_keys,
        revoke_key,
    )

    try:
        db = _database()
    except MongoUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.keys_action == "create":
        try:
            raw, key = create_key(db, args.name, args.scope)
        except ApiKeyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"created API key {key.name!r} ({key.key_id}) with scopes {', '.join(key.scopes)}")
        print("the key is shown only this once; store it now (only its hash is kept):")
        print(raw)
        return 0
    if args.keys_action == "revoke":
        try:
            key = revoke_key(db, args.key)
        except ApiKeyNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"revoked API key {key.name!r} ({key.key_id})")
        return 0
    keys = list_keys(db)
    print(f"{'ID':<21} {'NAME':<24} {'SCOPES':<36} {'CREATED':<16} {'LAST USED':<16} STATE")
    for key in keys:
        state = "revoked" if key.revoked else "active"
        print(
            f"{key.key_id:<21} {key.name:<24} {','.join(key.scopes):<36} "
            f"{_fmt(key.created_at):<16} {_fmt(key.last_used_at):<16} {state}"
        )
    if not keys:
        print("(no keys: create one with 'quant-pipelines api-keys create')")
    return 0


def add_api_keys_parser(sub: argparse._SubParsersAction) -> None:
    """Adds ``api-keys`` and its actions to the console script's subcommands."""
    from quant_pipelines.storage.api_keys import SCOPES

    keys = sub.add_parser("api-keys", help="create, list and revoke the HTTP API's keys")
    actions = keys.add_subparsers(dest="keys_action", required=True)
    create = actions.add_parser("create", help="create a key (printed once)")
    create.add_argument("--name", required=True, help="unique; recorded as the actor")
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=SCOPES,
        help="repeatable; admin implies every scope",
    )
    actions.add_parser("list", help="list keys (never the keys themselves)")
    revoke = actions.add_parser("revoke", help="revoke a key by name or id")
    revoke.add_argument("key", metavar="NAME_OR_ID")
    keys.set_defaults(func=cmd_api_keys)


def bootstrap_key(db: Database, dagster_home: Path) -> Path | None:
    """Creates the ``local-admin`` key when the database has no key at all.

    Args:
        db: The project database (indexes ensured).
        dagster_home: Where the key file goes (``<DAGSTER_HOME>/api/local-admin.key``).

    Returns:
        The path of the new key file, or None when a key already existed.
    """
    from quant_pipelines.owner_files import write_owner_only
    from quant_pipelines.storage.api_keys import ADMIN, ApiKeyError, any_key_exists, create_key

    if any_key_exists(db):
        return None
    try:
        raw, _ = create_key(db, BOOTSTRAP_KEY_NAME, [ADMIN])
    except ApiKeyError:  # another process created it first
        return None
    return write_owner_only(Path(dagster_home) / BOOTSTRAP_KEY_FILE, raw + "\n")


def prepare_api(host: str, *, public_ok: bool, dagster_home: Path) -> int:
    """The start-up checks of ``quant-pipelines api``: bind policy, then the first key.

    Returns:
        0 to go on serving; non-zero (after printing why) to stop.

    Raises:
        SystemExit: A non-loopback ``host`` without keys or without ``--i-know-this-is-public``.
    """
    from quant_pipelines.storage import MongoUnavailableError
    from quant_pipelines.storage.api_keys import active_key_count

    try:
        db = _database()
    except MongoUnavailableError as exc:
        if not is_loopback(host):
            raise SystemExit(
                f"refusing to listen on {host!r}: cannot check that API keys exist ({exc})"
            ) from None
        print(
            f"warning: {exc}; serving anyway (requests answer 503 until MongoDB is up; "
            "restart the API then if the database has no API key yet)",
            flush=True,
        )
        return 0
    check_bind(host, auth_configured=active_key_count(db) > 0, public_ok=public_ok)
    path = bootstrap_key(db, dagster_home)
    if path is not None:
        print(
            f"created the admin API key {BOOTSTRAP_KEY_NAME!r}: it is in {path} (mode 0600); "
            f'send it as "Authorization: Bearer $(cat {path})"',
            flush=True,
        )
    return 0


__all__ = [
    "BOOTSTRAP_KEY_FILE",
    "BOOTSTRAP_KEY_NAME",
    "PUBLIC_FLAG",
    "add_api_keys_parser",
    "bootstrap_key",
    "cmd_api_keys",
    "prepare_api",
]
