"""Helpers shared by the alert tests (fixtures live in conftest.py)."""

from __future__ import annotations

import datetime as dt
import time

SECRET = "test-webhook-secret"
T0 = dt.datetime(2024, 1, 3, 0, 0, tzinfo=dt.UTC)


def make_anomaly(
    i: int = 0, *, symbol: str = "AAPL", severity: str = "critical", detector: str = "iforest"
) -> dict:
    """A small anomaly document like the sentinel records."""
    ts = dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.UTC) + dt.timedelta(days=i)
    return {
        "symbol": symbol,
        "ts": ts,
        "detector": detector,
        "severity": severity,
        "score": 0.91,
        "threshold": 0.7,
        "status": "open",
        "created_at": ts + dt.timedelta(hours=8),
    }


def wait_until(predicate, *, timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Polls ``predicate`` until true or ``timeout``; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
