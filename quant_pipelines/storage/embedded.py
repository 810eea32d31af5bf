"""The embedded MongoDB-wire server: SecantusDB's ``secantusd-py`` run as a separate process.

SecantusDB is GPL-2.0, so it is never imported: it is started as a child process on
loopback, with its data, pidfile and log under ``<DAGSTER_HOME>/mongo``.

The server always runs with ``--auth`` (SCRAM-SHA-256). On the first start over a data folder
without a credentials file, two users are provisioned: an administrator (role ``root``) and an
application user (``readWrite`` on the project database only), with random passwords kept in
``<root>/credentials.json`` (mode 0600). Provisioning needs one unauthenticated start (that is
how SecantusDB creates its first user): it runs bound to 127.0.0.1 on a fresh ephemeral port,
only when there is no credentials file and the data folder has no users, and lasts about a
second; the users found afterwards must be exactly the two created, otherwise everything is
undone. Data folders of older versions (run without ``--auth``) are provisioned the same way on
their first start after the upgrade.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil
import pymongo
from pymongo.errors import OperationFailure, PyMongoError

from quant_pipelines.owner_files import InsecureFileError, new_secret, write_owner_only
from quant_pipelines.settings import (
    DEFAULT_DB,
    EMBEDDED_AUTH_SOURCE,
    EMBEDDED_MONGO_HOST,
    EMBEDDED_MONGO_PORT,
    MongoCredentials,
    Secret,
    embedded_mongo_uri,
    read_credentials,
)

EXECUTABLE = "secantusd-py"
ADMIN_USER = "qp_admin"
APP_USER = "qp_app"
CREDENTIALS_FILE = "credentials.json"


class EmbeddedMongoError(RuntimeError):
    """The embedded server could not be started, found or stopped."""


@dataclass(frozen=True)
class ServerStatus:
    """Where the embedded server is and whether it runs.

    Attributes:
        running: A live ``secantusd-py`` process owns the pidfile.
        pid: Its process id, or None.
        uri: Connection string of the server, without credentials.
        data_dir: WiredTiger data folder.
        log_file: The server's log.
        credentials_file: The owner-only file with its users' passwords.
    """

    running: bool
    pid: int | None
    uri: str
    data_dir: Path
    log_file: Path
    credentials_file: Path | None = None

    def describe(self) -> str:
        """One human line for ``quant-pipelines mongo status`` (never a password)."""
        state = f"running (pid {self.pid})" if self.running else "stopped"
        line = f"embedded MongoDB {state} at {self.uri}; data {self.data_dir}; log {self.log_file}"
        if self.credentials_file is not None:
            line += f"; auth on, credentials {self.credentials_file}"
        return line


def find_executable() -> str:
    """Locates ``secantusd-py`` next to this interpreter or on PATH."""
    beside = Path(sys.executable).with_name(EXECUTABLE)
    if beside.exists():
        return str(beside)
    found = shutil.which(EXECUTABLE)
    if not found:
        raise EmbeddedMongoError(
            f"{EXECUTABLE} not found: install the dev extra (`pip install -e .[dev]`) "
            "or set MONGODB_URI to a real MongoDB"
        )
    return found


def port_is_open(host: str, port: int, *, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def free_port(host: str = EMBEDDED_MONGO_HOST) -> int:
    """An unused TCP port on ``host`` (for tests)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class EmbeddedMongo:
    """Starts, stops and reports on one ``secantusd-py`` process over one data folder.

    Args:
        root: Folder for ``data/``, the pidfile and the log (``<DAGSTER_HOME>/mongo``).
        port: TCP port on loopback; the project default is not 27017.
        host: Bind address; loopback by default.
        extra_args: More server flags (tests pass ``--enable-test-commands``); ``--auth`` is
            always added.
        app_db: The database the application user may read and write (``MONGODB_DB``).
    """

    def __init__(
        self,
        root: Path,
        *,
        port: int = EMBEDDED_MONGO_PORT,
        host: str = EMBEDDED_MONGO_HOST,
        extra_args: Sequence[str] = (),
        app_db: str = DEFAULT_DB,
    ) -> None:
        self.root = Path(root)
        self.port = port
        self.host = host
        self.extra_args = tuple(arg for arg in extra_args if arg != "--auth")
        self.app_db = app_db

    @property
    def data_dir(self) -> Path:
        """WiredTiger data folder."""
        return self.root / "data"

    @property
    def pidfile(self) -> Path:
        """File holding the server's pid."""
        return self.root / "secantusd.pid"

    @property
    def log_file(self) -> Path:
        """The server's stdout and stderr."""
        return self.root / "secantusd.log"

    @property
    def credentials_file(self) -> Path:
        """Owner-only JSON file with the users' passwords (see :class:`MongoCredentials`)."""
        return self.root / CREDENTIALS_FILE

    @property
    def pending_credentials_file(self) -> Path:
        """New passwords of a rotation, kept until both users have them (then renamed over)."""
        return self.root / (CREDENTIALS_FILE + ".rotating")

    @property
    def public_uri(self) -> str:
        """Connection string without credentials: for messages; the server refuses it."""
        return embedded_mongo_uri(self.port, host=self.host)

    @property
    def uri(self) -> str:
        """The administrator's connection string (role ``root``), once provisioned.

        For the tools and tests that own this server and create databases of their own
        (benchmarks, test fixtures). The application uses :attr:`app_uri`. Before the first
        :meth:`start` it is :attr:`public_uri`. It holds a password: never print it.
        """
        credentials = self.credentials()
        if credentials is None:
            return self.public_uri
        return embedded_mongo_uri(
            self.port,
            host=self.host,
            user=credentials.admin_user,
            password=credentials.admin_password,
        )

    @property
    def app_uri(self) -> str:
        """The application user's connection string (``readWrite`` on its database only)."""
        credentials = self.credentials()
        if credentials is None:
            return self.public_uri
        return embedded_mongo_uri(
            self.port, host=self.host, user=credentials.app_user, password=credentials.app_password
        )

    def credentials(self) -> MongoCredentials | None:
        """The provisioned users, or None before the first start.

        Raises:
            EmbeddedMongoError: The file is readable by the group or others, not the user's,
                or malformed.
        """
        try:
            return read_credentials(self.credentials_file)
        except (InsecureFileError, ValueError) as exc:
            raise EmbeddedMongoError(f"refusing the MongoDB credentials file: {exc}") from None

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _live_pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            if not any(EXECUTABLE in part for part in proc.cmdline()):
                return None
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        return pid

    @staticmethod
    def _runs_with_auth(pid: int) -> bool:
        try:
            return "--auth" in psutil.Process(pid).cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False

    def status(self) -> ServerStatus:
        """Reports whether the server runs, and where (no password in it)."""
        pid = self._live_pid()
        credentials_file = self.credentials_file if self.credentials_file.exists() else None
        return ServerStatus(
            pid is not None, pid, self.public_uri, self.data_dir, self.log_file, credentials_file
        )

    def start(self, *, timeout: float = 60.0) -> ServerStatus:
        """Starts the server unless it already runs on this data folder (idempotent).

        Args:
            timeout: Seconds to wait until the server accepts connections.

        Returns:
            The status after start.

        The first start over a data folder without a credentials file provisions the users
        (see the module docstring); every start runs the server with ``--auth`` and checks
        that the credentials file opens it. A live server started without ``--auth`` (by an
        older version) is restarted with it, after provisioning.

        Raises:
            EmbeddedMongoError: The port is taken by another process, the server died or did
                not answer within ``timeout`` (the log's tail is in the message), the
                credentials file is not owner-only or does not open this data folder, or the
                data folder has users but no credentials file.
        """
        with self._lock():
            pid = self._live_pid()
            if pid is not None:
                if self._runs_with_auth(pid):
                    if not self.credentials_file.exists():
                        raise EmbeddedMongoError(
                            f"{EXECUTABLE} (pid {pid}) runs with --auth but "
                            f"{self.credentials_file} is missing; restore it from a backup"
                        )
                    self._wait_ready(pid, self.host, self.port, timeout)
                    return self.status()
                # Started by an older version without --auth: restart it authenticated.
                self._terminate(pid)
            self.pidfile.unlink(missing_ok=True)
            if port_is_open(self.host, self.port):
                raise EmbeddedMongoError(
                    f"port {self.host}:{self.port} is already in use by another process; "
                    "stop it or set MONGODB_URI"
                )
            self.data_dir.mkdir(parents=True, exist_ok=True)
            credentials = self.credentials()
            if credentials is None:
                credentials = self._provision(timeout)
            proc = self._launch(self.host, self.port, [*self.extra_args, "--auth"])
            self._wait_ready(proc.pid, self.host, self.port, timeout, proc=proc)
            if self.pending_credentials_file.exists():  # a rotation was interrupted
                credentials = self._finish_rotation(credentials)
            self._check_credentials(proc.pid, credentials)
            return self.status()

    def rotate_credentials(self, *, timeout: float = 60.0) -> ServerStatus:
        """Gives both users new random passwords and rewrites the credentials file.

        Starts the server if needed. The new passwords are first written owner-only to
        :attr:`pending_credentials_file`, then set with ``updateUser`` (as the administrator),
        then that file is renamed over the credentials file (atomic). If this is interrupted,
        the next :meth:`start` or rotation finishes it. Clients connected before keep their
        sessions; new connections need the new passwords (restart the API and Dagster).

        Returns:
            The status after rotation.

        Raises:
            EmbeddedMongoError: The server could not be started or refused the administrator.
        """
        self.start(timeout=timeout)
        with self._lock():
            current = self.credentials()
            if current is None:  # pragma: no cover - start() provisions
                raise EmbeddedMongoError(f"{self.credentials_file} is missing")
            if not self.pending_credentials_file.exists():
                fresh = MongoCredentials(
                    admin_user=current.admin_user,
                    admin_password=Secret(new_secret()),
                    app_user=current.app_user,
                    app_password=Secret(new_secret()),
                    app_db=current.app_db,
                )
                write_owner_only(self.pending_credentials_file, fresh.to_json())
            self._finish_rotation(current)
        return self.status()

    def _finish_rotation(self, current: MongoCredentials) -> MongoCredentials:
        """Sets both users' passwords to the pending ones and promotes the pending file."""
        try:
            pending = read_credentials(self.pending_credentials_file)
        except (InsecureFileError, ValueError) as exc:
            raise EmbeddedMongoError(f"refusing the pending credentials file: {exc}") from None
        if pending is None:
            return current
        for admin in (current, pending):  # whichever administrator password is in force
            uri = embedded_mongo_uri(
                self.port, host=self.host, user=admin.admin_user, password=admin.admin_password
            )
            client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10_000)
            try:
                users = client[EMBEDDED_AUTH_SOURCE]
                users.command("updateUser", pending.app_user, pwd=pending.app_password.get())
                users.command("updateUser", pending.admin_user, pwd=pending.admin_password.get())
            except OperationFailure as exc:
                if exc.code == 18:
                    continue
                raise EmbeddedMongoError(
                    f"MongoDB at {self.host}:{self.port} refused the rotation (code {exc.code})"
                ) from None
            finally:
                client.close()
            os.replace(self.pending_credentials_file, self.credentials_file)
            return pending
        raise EmbeddedMongoError(
            f"MongoDB at {self.host}:{self.port} refused both the current and the pending "
            f"administrator passwords ({self.credentials_file}, {self.pending_credentials_file})"
        )

    def _launch(self, host: str, port: int, args: Sequence[str]) -> subprocess.Popen:
        cmd = [
            find_executable(),
            "--host",
            host,
            "--port",
            str(port),
            "--storage-path",
            str(self.data_dir),
            "--log-level",
            "WARNING",
            *args,
        ]
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pidfile.write_text(str(proc.pid))
        return proc

    def _provision(self, timeout: float) -> MongoCredentials:
        """Creates the two users in an unauthenticated window on an ephemeral loopback port.

        Runs only when there is no credentials file. Refuses a data folder that already has
        users (their passwords are unknown: restore the file instead), and undoes everything if
        anyone else created a user during the window.
        """
        port = free_port(EMBEDDED_MONGO_HOST)
        proc = self._launch(EMBEDDED_MONGO_HOST, port, [])
        written = False
        client: pymongo.MongoClient | None = None
        try:
            self._wait_ready(proc.pid, EMBEDDED_MONGO_HOST, port, timeout, proc=proc)
            client = pymongo.MongoClient(
                embedded_mongo_uri(port), serverSelectionTimeoutMS=int(timeout * 1000)
            )
            existing = _users(client)
            if existing:
                raise EmbeddedMongoError(
                    f"{self.data_dir} already has MongoDB users ({', '.join(sorted(existing))}) "
                    f"but {self.credentials_file} is missing; restore that file from a backup "
                    "(see docs/runbook.md, 'MongoDB credentials')"
                )
            credentials = MongoCredentials(
                admin_user=ADMIN_USER,
                admin_password=Secret(new_secret()),
                app_user=APP_USER,
                app_password=Secret(new_secret()),
                app_db=self.app_db,
            )
            try:
                admin = client[EMBEDDED_AUTH_SOURCE]
                admin.command(
                    "createUser",
                    credentials.admin_user,
                    pwd=credentials.admin_password.get(),
                    roles=[{"role": "root", "db": "admin"}],
                )
                admin.command(
                    "createUser",
                    credentials.app_user,
                    pwd=credentials.app_password.get(),
                    roles=[{"role": "readWrite", "db": credentials.app_db}],
                )
                found = _users(client)
                expected = {
                    f"{EMBEDDED_AUTH_SOURCE}.{credentials.admin_user}",
                    f"{EMBEDDED_AUTH_SOURCE}.{credentials.app_user}",
                }
                if found != expected:
                    raise EmbeddedMongoError(
                        "another client created MongoDB users during provisioning "
                        f"({', '.join(sorted(found - expected))}); nothing was kept, start again"
                    )
                write_owner_only(self.credentials_file, credentials.to_json())
                written = True
            finally:
                if not written:
                    with contextlib.suppress(PyMongoError):
                        for name in _users(client):
                            db, _, user = name.partition(".")
                            client[db].command("dropUser", user)
            return credentials
        except PyMongoError as exc:
            raise EmbeddedMongoError(
                f"could not provision the MongoDB users: {type(exc).__name__}; "
                f"log tail:\n{self._log_tail()}"
            ) from None
        finally:
            if client is not None:
                client.close()
            self._terminate(proc.pid)
            self.pidfile.unlink(missing_ok=True)

    def _check_credentials(self, pid: int, credentials: MongoCredentials) -> None:
        """Authenticates as the administrator; stops the server if the file does not match."""
        uri = embedded_mongo_uri(
            self.port,
            host=self.host,
            user=credentials.admin_user,
            password=credentials.admin_password,
        )
        client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10_000)
        try:
            client.admin.command("ping")
            self._grant_app_db(client, credentials)
        except OperationFailure as exc:
            if exc.code != 18:
                raise EmbeddedMongoError(
                    f"MongoDB at {self.host}:{self.port} refused the administrator "
                    f"(code {exc.code})"
                ) from None
            self._terminate(pid)
            self.pidfile.unlink(missing_ok=True)
            raise EmbeddedMongoError(
                f"MongoDB at {self.host}:{self.port} refused the credentials in "
                f"{self.credentials_file} (authentication failed); the file does not belong "
                f"to {self.data_dir}"
            ) from None
        finally:
            client.close()

    def _grant_app_db(self, client: pymongo.MongoClient, credentials: MongoCredentials) -> None:
        """Lets the application user into :attr:`app_db` when ``MONGODB_DB`` changed."""
        if credentials.app_db == self.app_db:
            return
        client[EMBEDDED_AUTH_SOURCE].command(
            "grantRolesToUser",
            credentials.app_user,
            roles=[{"role": "readWrite", "db": self.app_db}],
        )

    def _terminate(self, pid: int, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; no-op when the process is gone."""
        try:
            proc = psutil.Process(pid)
            os.kill(pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except psutil.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                proc.wait(timeout=10)
        except (psutil.NoSuchProcess, ProcessLookupError):
            return

    def _wait_ready(
        self,
        pid: int,
        host: str,
        port: int,
        timeout: float,
        *,
        proc: subprocess.Popen | None = None,
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                self.pidfile.unlink(missing_ok=True)
                raise EmbeddedMongoError(
                    f"{EXECUTABLE} exited with code {proc.returncode}; "
                    f"log tail:\n{self._log_tail()}"
                )
            if port_is_open(host, port):
                return
            time.sleep(0.1)
        raise EmbeddedMongoError(
            f"{EXECUTABLE} (pid {pid}) did not accept connections on {host}:{port} "
            f"within {timeout:.0f}s; log tail:\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self, *, timeout: float = 30.0) -> ServerStatus:
        """Stops the server cleanly (SIGTERM, then SIGKILL after ``timeout``); idempotent."""
        with self._lock():
            pid = self._live_pid()
            if pid is None:
                self.pidfile.unlink(missing_ok=True)
                return self.status()
            self._terminate(pid, timeout)
            self.pidfile.unlink(missing_ok=True)
            return self.status()


def _users(client: pymongo.MongoClient) -> set[str]:
    """``db.user`` of every user the server knows (``admin`` and every listed database)."""
    names = {EMBEDDED_AUTH_SOURCE, *client.list_database_names()}
    found: set[str] = set()
    for name in names:
        for user in client[name].command("usersInfo").get("users", []):
            found.add(f"{user.get('db', name)}.{user['user']}")
    return found
