"""Smoke-test fixtures: a temporary Dagster home with real runs, the webserver, headless Chromium.

Chromium is Debian's ``chromium`` package (``make browser-deps``), driven by the PyPI
``playwright`` package through ``executable_path``; no browser is ever downloaded.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import pytest
from pymongo.database import Database

from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.storage import BarsRepository
from quant_pipelines.storage.embedded import free_port

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "img"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}
BARS_START, BARS_END = "2022-01-01", "2023-06-30"


def wait_for_http(url: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    """Polls ``url`` until it answers 200; fails early if ``proc`` exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout_s}s")
        time.sleep(0.25)


def stop_process_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the group this test started (server and its code-server child), then SIGKILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary DAGSTER_HOME with the project's instance configuration."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def instance(dagster_home: Path) -> Iterator[dg.DagsterInstance]:
    """The persistent instance of the temporary home."""
    with dg.DagsterInstance.get() as inst:
        yield inst


@pytest.fixture
def btc_bars(mongo_env: Database) -> Database:
    """~550 daily synthetic BTCUSD bars, written through the repository."""
    bars = SyntheticSource(seed=5).bars("BTCUSD", BARS_START, BARS_END)
    BarsRepository(mongo_env).upsert(bars, symbol="BTCUSD", source="t", batch_id="t")
    return mongo_env


@pytest.fixture
def chromium_context(tmp_path: Path):
    """A headless Debian Chromium with a fresh profile, driven by playwright."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} missing: run `make browser-deps` (Debian's chromium package)")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def webserver(dagster_home: Path, mongo_env: Database) -> Iterator[str]:
    """``dagster-webserver`` on a free loopback port over the temporary home; always stopped."""
    port = free_port()
    exe = Path(sys.executable).with_name("dagster-webserver")
    cmd = [str(exe), "-h", "127.0.0.1", "-p", str(port), "-m", "quant_pipelines.definitions"]
    log = (dagster_home / "webserver.log").open("wb")
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=dict(os.environ),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/server_info", timeout_s=90, proc=proc)
        yield base
    finally:
        stop_process_group(proc)
        log.close()
