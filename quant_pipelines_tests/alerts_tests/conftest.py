"""A real HTTP receiver on loopback with scriptable responses, and alert fixtures."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from quant_pipelines_tests.alerts_tests._support import Received, Receiver, serve_receiver

__all__ = ["Received", "Receiver"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A live HTTP receiver on 127.0.0.1 (a fresh one per test)."""
    with serve_receiver() as recv:
        yield recv


@pytest.fixture
def dead_url() -> str:
    """A loopback URL where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"
