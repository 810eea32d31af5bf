"""The embedded MongoDB-wire server: SecantusDB's ``secantusd-py`` run as a separate process.

SecantusDB is GPL-2.0, so it is never imported: it is started as a child process on
loopback, with its data, pidfile and log under ``<DAGSTER_HOME>/mongo``.
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

from quant_pipelines.settings import EMBEDDED_MONGO_HOST, EMBEDDED_MONGO_PORT, embedded_mongo_uri

EXECUTABLE = "secantusd-py"


class EmbeddedMongoError(RuntimeError):
    """The embedded server could not be started, found or stopped."""


@dataclass(frozen=True)
class ServerStatus:
    """Where the embedded server is and whether it runs.

    Attributes:
        running: A live ``secantusd-py`` process owns the pidfile.
        pid: Its process id, or None.
        uri: Connection string of the server.
        data_dir: WiredTiger data folder.
        log_file: The server's log.
    """

    running: bool
    pid: int | None
    uri: str
    data_dir: Path
    log_file: Path

    def describe(self) -> str:
        """One human line for ``quant-pipelines mongo status``."""
        state = f"running (pid {self.pid})" if self.running else "stopped"
        return f"embedded MongoDB {state} at {self.uri}; data {self.data_dir}; log {self.log_file}"


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
        extra_args: More server flags (tests pass ``--enable-test-commands``).
    """

    def __init__(
        self,
        root: Path,
        *,
        port: int = EMBEDDED_MONGO_PORT,
        host: str = EMBEDDED_MONGO_HOST,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.root = Path(root)
        self.port = port
        self.host = host
        self.extra_args = tuple(extra_args)

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
    def uri(self) -> str:
        """Connection string of this server."""
        if self.host == EMBEDDED_MONGO_HOST:
            return embedded_mongo_uri(self.port)
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

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

    def status(self) -> ServerStatus:
        """Reports whether the server runs, and where."""
        pid = self._live_pid()
        return ServerStatus(pid is not None, pid, self.uri, self.data_dir, self.log_file)

    def start(self, *, timeout: float = 60.0) -> ServerStatus:
        """Starts the server unless it already runs on this data folder (idempotent).

        Args:
            timeout: Seconds to wait until the server accepts connections.

        Returns:
            The status after start.

        Raises:
            EmbeddedMongoError: The port is taken by another process, or the server died
                or did not answer within ``timeout`` (the log's tail is in the message).
        """
        with self._lock():
            pid = self._live_pid()
            if pid is not None:
                self._wait_ready(pid, timeout)
                return self.status()
            self.pidfile.unlink(missing_ok=True)
            if port_is_open(self.host, self.port):
                raise EmbeddedMongoError(
                    f"port {self.host}:{self.port} is already in use by another process; "
                    "stop it or set MONGODB_URI"
                )
            self.data_dir.mkdir(parents=True, exist_ok=True)
            cmd = [
                find_executable(),
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--storage-path",
                str(self.data_dir),
                "--log-level",
                "WARNING",
                *self.extra_args,
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
            self._wait_ready(proc.pid, timeout, proc=proc)
            return self.status()

    def _wait_ready(
        self, pid: int, timeout: float, *, proc: subprocess.Popen | None = None
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                self.pidfile.unlink(missing_ok=True)
                raise EmbeddedMongoError(
                    f"{EXECUTABLE} exited with code {proc.returncode}; "
                    f"log tail:\n{self._log_tail()}"
                )
            if port_is_open(self.host, self.port):
                return
            time.sleep(0.1)
        raise EmbeddedMongoError(
            f"{EXECUTABLE} (pid {pid}) did not accept connections on {self.host}:{self.port} "
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
            proc = psutil.Process(pid)
            os.kill(pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except psutil.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                proc.wait(timeout=10)
            self.pidfile.unlink(missing_ok=True)
            return self.status()
