from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from quant_pipelines.storage.embedded import free_port

pytestmark = pytest.mark.slow


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quant_pipelines.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_mongo_start_status_stop_round_trip(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"MONGODB_URI", "MONGODB_DB"}}
    env |= {"DAGSTER_HOME": str(tmp_path), "QP_MONGO_PORT": str(port)}

    stopped = _cli("mongo", "status", env=env)
    assert stopped.returncode == 3 and "stopped" in stopped.stdout

    started = _cli("mongo", "start", env=env)
    assert started.returncode == 0, started.stderr
    assert f"127.0.0.1:{port}" in started.stdout and str(tmp_path / "mongo") in started.stdout
    pid = (tmp_path / "mongo" / "secantusd.pid").read_text()
    credentials = tmp_path / "mongo" / "credentials.json"
    assert "auth on" in started.stdout and str(credentials) in started.stdout
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert "--auth" in psutil.Process(int(pid)).cmdline()
    for password in re.findall(r'"password": "([^"]+)"', credentials.read_text()):
        assert password not in started.stdout + started.stderr

    again = _cli("mongo", "start", env=env)
    assert again.returncode == 0
    assert (tmp_path / "mongo" / "secantusd.pid").read_text() == pid, "no second server"

    status = _cli("mongo", "status", env=env)
    assert status.returncode == 0 and f"running (pid {pid})" in status.stdout

    assert _cli("mongo", "stop", env=env).returncode == 0
    assert "stopped" in _cli("mongo", "status", env=env).stdout
    assert not (tmp_path / "mongo" / "secantusd.pid").exists()


def test_mongo_start_respects_a_real_mongodb_uri(tmp_path: Path) -> None:
    env = dict(os.environ) | {
        "DAGSTER_HOME": str(tmp_path),
        "MONGODB_URI": "mongodb://ops:topsecret@db.internal:27017/",
    }
    out = _cli("mongo", "start", env=env)
    assert out.returncode == 0
    assert "not starting" in out.stdout
    assert "topsecret" not in out.stdout + out.stderr
    assert not (tmp_path / "mongo" / "secantusd.pid").exists()
