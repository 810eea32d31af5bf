"""``quant-pipelines optuna-dashboard``: a read-only, authenticated optuna-dashboard.

optuna-dashboard has no authentication and writes to its storage (create, rename and delete
studies, notes, user attributes, "tell"). Here it is served:

* over :class:`~quant_pipelines.storage._readonly_optuna.ReadOnlyStorage`, which refuses every
  write of the Optuna storage API;
* behind :class:`DashboardGuard`, a WSGI middleware that requires the dashboard token (HTTP
  Basic with any user name and the token as password, which a browser prompts for, or
  ``Authorization: Bearer <token>``) and answers every method other than GET and HEAD with
  403 before it reaches the dashboard;
* on loopback by default; another ``--host`` needs ``--i-know-this-is-public``
  (:func:`quant_pipelines.cli._bind.check_bind`).

The token is ``QP_DASHBOARD_TOKEN`` when set, otherwise the owner-only file
``$DAGSTER_HOME/optuna_dashboard_token``, created with a random token on first start.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hmac
import json
import os
import socket
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from quant_pipelines.cli._bind import PUBLIC_FLAG, check_bind
from quant_pipelines.owner_files import new_secret, read_owner_only, write_owner_only

TOKEN_ENV = "QP_DASHBOARD_TOKEN"  # noqa: S105 - a variable name, not a secret
TOKEN_FILE = "optuna_dashboard_token"  # noqa: S105 - a file name
REALM = "optuna-dashboard"
#: Methods that only read; anything else is refused by the guard (the dashboard is a viewer).
READ_METHODS = frozenset({"GET", "HEAD"})

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def token_path(dagster_home: str | Path) -> Path:
    """The token file under ``dagster_home``."""
    return Path(dagster_home) / TOKEN_FILE


def dashboard_token(dagster_home: str | Path, env: dict[str, str] | None = None) -> tuple[str, str]:
    """The dashboard's token, and where it comes from (for the start-up message).

    Args:
        dagster_home: ``DAGSTER_HOME``, where the token file lives.
        env: The environment (default: ``os.environ``).

    Returns:
        ``(token, source)``: ``QP_DASHBOARD_TOKEN`` when set (non-empty), otherwise the token
        file, created (mode 0600) with a random token when missing.

    Raises:
        quant_pipelines.owner_files.InsecureFileError: The token file is readable or
            writable by others.
    """
    value = (os.environ if env is None else env).get(TOKEN_ENV, "").strip()
    if value:
        return value, f"${TOKEN_ENV}"
    path = token_path(dagster_home)
    try:
        token = read_owner_only(path).strip()
    except FileNotFoundError:
        token = ""
    if not token:
        token = new_secret()
        write_owner_only(path, token + "\n")
    return token, str(path)


def _json(start_response: Callable[..., Any], status: str, body: dict, extra=()) -> list[bytes]:
    data = json.dumps(body).encode()
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(data))),
        ("Cache-Control", "no-store"),
        *extra,
    ]
    start_response(status, headers)
    return [data]


class DashboardGuard:
    """WSGI middleware: the dashboard token is required, and only reads reach the app.

    Args:
        app: The WSGI application to protect (``optuna_dashboard.wsgi(storage)``).
        token: The secret every request must present.
        read_only: Refuse methods other than GET and HEAD with 403 (default).
    """

    def __init__(self, app: WSGIApp, token: str, *, read_only: bool = True) -> None:
        if not token:
            raise ValueError("the dashboard token is empty")
        self._app = app
        self._token = token.encode()
        self._read_only = read_only

    def authorized(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries the token (Bearer, or Basic password)."""
        if not header:
            return False
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            presented = value.encode()
        elif scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return False
            presented = decoded.partition(b":")[2]
        else:
            return False
        return hmac.compare_digest(presented, self._token)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Answers 401 without the token, 403 for a write, else passes the request on."""
        if not self.authorized(environ.get("HTTP_AUTHORIZATION")):
            challenge = ("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')
            return _json(
                start_response,
                "401 Unauthorized",
                {
                    "reason": "authentication required: the dashboard token (see the start-up "
                    "message) as HTTP Basic password or Bearer token"
                },
                [challenge],
            )
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        if self._read_only and method not in READ_METHODS:
            return _json(
                start_response,
                "403 Forbidden",
                {"reason": f"{method} refused: this optuna-dashboard is read-only"},
                [("Allow", "GET, HEAD")],
            )
        return self._app(environ, start_response)


def build_app(storage: Any, token: str) -> DashboardGuard:
    """optuna-dashboard over a read-only view of ``storage``, behind the token guard.

    Args:
        storage: The Optuna storage of the studies (e.g. ``optuna_storage(db)``).
        token: The dashboard token.

    Returns:
        The WSGI application to serve.
    """
    import optuna_dashboard

    from quant_pipelines.storage._readonly_optuna import ReadOnlyStorage

    return DashboardGuard(optuna_dashboard.wsgi(ReadOnlyStorage(storage)), token)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} - {format % args}\n")


def serve(app: WSGIApp, host: str, port: int) -> None:
    """Serves ``app`` on ``host:port`` with a threaded wsgiref server until interrupted."""
    server_class = _ThreadingServer6 if ":" in host.strip("[]") else _ThreadingServer
    with make_server(
        host.strip("[]"), port, app, server_class=server_class, handler_class=_QuietHandler
    ) as httpd:
        with contextlib.suppress(KeyboardInterrupt):
            httpd.serve_forever()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``optuna-dashboard`` options."""
    parser.add_argument("--host", default="127.0.0.1", help="default: loopback only")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        PUBLIC_FLAG,
        dest="public_ok",
        action="store_true",
        help="allow a --host beyond loopback (the dashboard token is always required)",
    )


def run(args: argparse.Namespace, database: Callable[[], Any]) -> int:
    """Runs the command: checks the bind, opens the storage, prints how to log in, serves.

    Args:
        args: Parsed options (``host``, ``port``, ``public_ok``).
        database: Returns the project database (raises ``MongoUnavailableError``).

    Returns:
        The exit status.
    """
    from quant_pipelines.owner_files import InsecureFileError
    from quant_pipelines.settings import load_settings
    from quant_pipelines.storage import MongoUnavailableError, optuna_storage

    settings = load_settings()
    try:
        token, source = dashboard_token(settings.dagster_home)
    except InsecureFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # The guard always requires the token, so authentication is configured.
    check_bind(args.host, auth_configured=True, public_ok=bool(getattr(args, "public_ok", False)))
    try:
        db = database()
    except MongoUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # No leases: a viewer never fails another worker's trial (and it writes nothing anyway).
    storage = optuna_storage(db, heartbeat_interval=None)
    app = build_app(storage, token)
    print(
        f"optuna-dashboard (read-only) on http://{args.host}:{args.port} "
        f"(studies in {db.name}); log in with any user name and the token from {source}",
        flush=True,
    )
    serve(app, args.host, args.port)
    return 0
