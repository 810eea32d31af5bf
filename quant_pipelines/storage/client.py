"""MongoDB client factory with explicit timeouts and password-free errors."""

from __future__ import annotations

import datetime as dt

import pymongo
from pymongo.database import Database
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from quant_pipelines.settings import (
    InvalidMongoURIError,
    redact_uri,
    uri_hosts,
    validate_mongodb_uri,
)

DEFAULT_SERVER_SELECTION_TIMEOUT_MS = 5_000
DEFAULT_TIMEOUT_MS = 60_000


#: Server error codes: the credentials were refused / the user may not run the command.
AUTHENTICATION_FAILED = 18
UNAUTHORIZED = 13


class MongoUnavailableError(ConnectionError):
    """MongoDB could not be reached; the message names the host, never a password."""


class MongoAuthenticationError(MongoUnavailableError):
    """MongoDB refused the credentials (or the user's rights); one line, host and cause."""


def make_client(
    uri: str,
    *,
    server_selection_timeout_ms: int = DEFAULT_SERVER_SELECTION_TIMEOUT_MS,
    timeout_ms: int | None = DEFAULT_TIMEOUT_MS,
    app_name: str = "quant_pipelines",
    **options: object,
) -> pymongo.MongoClient:
    """Builds a client that returns tz-aware UTC datetimes and fails fast when unreachable.

    Connection is lazy: no network I/O happens here. Retryable reads and writes are on,
    so a connection dropped mid-write is retried once by the driver.

    Args:
        uri: MongoDB connection string (may hold credentials; they are never logged).
        server_selection_timeout_ms: How long to wait for a usable server.
        timeout_ms: Client-side timeout for every operation (``timeoutMS``); None disables it.
        app_name: Reported to the server for diagnostics.
        **options: Further ``MongoClient`` options (e.g. ``event_listeners``).

    Returns:
        A ``pymongo.MongoClient``.

    Raises:
        MongoUnavailableError: The URI is invalid, e.g. a password that is not
            percent-encoded (the message names the host, never the password).
    """
    try:
        validate_mongodb_uri(uri)
    except InvalidMongoURIError as exc:
        raise MongoUnavailableError(str(exc)) from None
    kwargs: dict[str, object] = {
        "tz_aware": True,
        "tzinfo": dt.UTC,
        "serverSelectionTimeoutMS": server_selection_timeout_ms,
        "connectTimeoutMS": min(server_selection_timeout_ms, 10_000),
        "retryWrites": True,
        "retryReads": True,
        "appname": app_name,
    }
    if timeout_ms is not None:
        kwargs["timeoutMS"] = timeout_ms
    kwargs.update(options)
    try:
        return pymongo.MongoClient(uri, **kwargs)
    except PyMongoError as exc:  # malformed URI and the like
        raise MongoUnavailableError(
            f"invalid MongoDB URI {redact_uri(uri)}: {type(exc).__name__}"
        ) from None


def ping(client: pymongo.MongoClient, uri: str) -> None:
    """Checks that the server answers, raising :class:`MongoUnavailableError` otherwise.

    Args:
        client: The client to check.
        uri: The URI it was built from, used only to name the host in the error.

    Raises:
        MongoAuthenticationError: The server refused the credentials.
        MongoUnavailableError: The server did not answer within the selection timeout.
    """
    # With timeoutMS set, pymongo waits up to timeoutMS (not serverSelectionTimeoutMS) for a
    # server; bound the ping by the selection timeout so an unreachable host fails fast.
    deadline = client.options.server_selection_timeout
    try:
        with pymongo.timeout(deadline):
            client.admin.command("ping")
    except OperationFailure as exc:
        if exc.code in (AUTHENTICATION_FAILED, UNAUTHORIZED):
            raise MongoAuthenticationError(describe_failure(uri, exc)) from None
        raise
    except (ConnectionFailure, pymongo.errors.ExecutionTimeout) as exc:
        raise MongoUnavailableError(describe_failure(uri, exc)) from None


def describe_failure(uri: str, exc: BaseException) -> str:
    """A one-line description of a connection failure naming the hosts and no credentials.

    Refused credentials (``OperationFailure`` code 18) and missing rights (code 13) get their
    own line; pymongo's message is never repeated (its ``details`` echo the server's reply).
    """
    if isinstance(exc, OperationFailure) and exc.code == AUTHENTICATION_FAILED:
        return f"MongoDB at {uri_hosts(uri)} refused the credentials (authentication failed)"
    if isinstance(exc, OperationFailure) and exc.code == UNAUTHORIZED:
        return (
            f"MongoDB at {uri_hosts(uri)} refused the operation (not authorized): check the "
            "user and its roles, or run `quant-pipelines mongo start` to provision the "
            "embedded server's credentials"
        )
    timeout = ""
    if isinstance(exc, pymongo.errors.ServerSelectionTimeoutError):
        timeout = " (server selection timed out)"
    elif isinstance(exc, pymongo.errors.ExecutionTimeout | pymongo.errors.NetworkTimeout):
        timeout = " (timed out)"
    return (
        f"MongoDB at {uri_hosts(uri)} is unreachable{timeout}: {type(exc).__name__}. "
        "Start the embedded server with `quant-pipelines mongo start` or set MONGODB_URI."
    )


def get_database(client: pymongo.MongoClient, name: str) -> Database:
    """Returns database ``name`` from ``client``."""
    return client.get_database(name)
