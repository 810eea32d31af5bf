"""``quant-pipelines mongo …`` and the CLI's database connection.

Kept apart from :mod:`quant_pipelines.cli` so the commands' module stays small. Every failure
here is one line on stderr naming the host and the cause, never a traceback or a password.
"""

from __future__ import annotations

import argparse
import sys

from quant_pipelines.owner_files import InsecureFileError
from quant_pipelines.settings import Settings, load_settings

ACTIONS = ("start", "stop", "status", "rotate-credentials")


def _settings() -> Settings:
    """The settings, or :class:`MongoUnavailableError` with a one-line reason."""
    from quant_pipelines.storage import MongoUnavailableError

    try:
        return load_settings()
    except (InsecureFileError, ValueError) as exc:  # credentials file, MONGODB_URI, integers
        raise MongoUnavailableError(str(exc)) from None


def embedded_server(settings: Settings):
    """The embedded server of these settings (under ``DAGSTER_HOME/mongo``)."""
    from quant_pipelines.storage import EmbeddedMongo

    return EmbeddedMongo(
        settings.dagster_home / "mongo",
        port=settings.embedded_mongo_port,
        app_db=settings.mongodb_db,
    )


def run_mongo(args: argparse.Namespace) -> int:
    """``mongo start|stop|status|rotate-credentials``: manage the embedded server.

    Returns:
        0 on success, 1 on an error (one line on stderr), 3 for ``status`` when stopped.
    """
    from quant_pipelines.storage import EmbeddedMongoError, MongoUnavailableError

    try:
        settings = _settings()
    except MongoUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.action in {"start", "rotate-credentials"} and not settings.mongodb_is_embedded:
        verb = "starting" if args.action == "start" else "rotating the credentials of"
        print(f"MONGODB_URI is set ({settings.redacted_uri}); not {verb} the embedded server")
        return 0
    server = embedded_server(settings)
    try:
        if args.action == "start":
            status = server.start()
        elif args.action == "stop":
            status = server.stop()
        elif args.action == "rotate-credentials":
            status = server.rotate_credentials()
            print(
                f"new passwords written to {server.credentials_file}; restart the API and Dagster"
            )
        else:
            status = server.status()
    except EmbeddedMongoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(status.describe())
    return 0 if (status.running or args.action == "stop") else 3


def database():
    """The project database from the settings, after a ping (fails fast, names the host).

    Raises:
        MongoUnavailableError: Unreachable, invalid URI, refused credentials or rights
            (:class:`~quant_pipelines.storage.client.MongoAuthenticationError`), or an
            unreadable credentials file; the message is one line without any password.
    """
    from pymongo.errors import OperationFailure

    from quant_pipelines.storage import describe_failure, ensure_indexes, make_client, ping
    from quant_pipelines.storage.client import (
        AUTHENTICATION_FAILED,
        UNAUTHORIZED,
        MongoAuthenticationError,
    )

    settings = _settings()
    client = make_client(
        settings.mongodb_uri,
        server_selection_timeout_ms=settings.server_selection_timeout_ms,
        timeout_ms=settings.timeout_ms,
    )
    ping(client, settings.mongodb_uri)
    db = client[settings.mongodb_db]
    try:
        ensure_indexes(db)  # the first command that needs rights: ping does not
    except OperationFailure as exc:
        if exc.code in (AUTHENTICATION_FAILED, UNAUTHORIZED):
            client.close()
            raise MongoAuthenticationError(describe_failure(settings.mongodb_uri, exc)) from None
        raise
    return db
