"""The demo's runs: jobs run by name, the failed-check line, the webhook receiver, a bad batch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

#: Dagster's console logger prints nothing below CRITICAL: the demo reports each run itself.
_QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
_TAGS = {"quant_pipelines/origin": "demo"}


class DemoRunError(Exception):
    """A run that should have succeeded failed (the message names the run and the error)."""


def last_closed_keys(job: dg.JobDefinition, asset_class: str, count: int, now: pd.Timestamp):
    """The last ``count`` partition keys of ``job`` whose session has closed by ``now``."""
    from quant_pipelines.marketdata.calendars import session_bounds

    assert job.partitions_def is not None, f"{job.name} is not partitioned"
    keys = job.partitions_def.get_partition_keys()[-(count + 3) :]
    _, closes = session_bounds(asset_class, pd.DatetimeIndex(pd.to_datetime(keys)))
    closes = closes.tz_localize("UTC") if closes.tz is None else closes
    return [k for k, c in zip(keys, closes, strict=True) if c <= now][-count:]


class Runner:
    """Runs the project's jobs by name, quietly, tagged as demo runs."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.defs = defs
        self.instance = instance

    def job(self, name: str) -> dg.JobDefinition:
        """The job called ``name`` in the project's Definitions (wherever its module lives)."""
        return self.defs.resolve_job_def(name)

    def materialize(self, *keys: str, **kwargs: Any):
        """Materializes assets by key (those without a job of their own, e.g. automated ones)."""
        selection = [dg.AssetKey.from_user_string(k) for k in keys]
        job = self.defs.resolve_implicit_job_def_def_for_assets(selection)
        assert job is not None, f"no asset job holds {keys}"
        return self(job.name, asset_selection=selection, **kwargs)

    def __call__(self, job: str, *, expect_success: bool = True, **kwargs: Any):
        """Runs ``job`` in process; kwargs go to ``execute_in_process``.

        A key of dynamic partitions (symbols, kept by a sensor in a deployment) is added to
        the instance first.

        Raises:
            DemoRunError: The run failed and ``expect_success`` is set.
        """
        config = kwargs.pop("run_config", {})
        definition = self.job(job)
        partitions = definition.partitions_def
        key = kwargs.get("partition_key")
        if isinstance(partitions, dg.DynamicPartitionsDefinition) and key is not None:
            assert partitions.name is not None
            if not self.instance.has_dynamic_partition(partitions.name, key):
                self.instance.add_dynamic_partitions(partitions.name, [key])
        result = definition.execute_in_process(
            instance=self.instance,
            run_config={**_QUIET, **config},
            raise_on_error=False,
            tags={**_TAGS, **kwargs.pop("tags", {})},
            **kwargs,
        )
        if expect_success and not result.success:
            errors = [e.step_failure_data.error for e in result.get_step_failure_events()]
            message = errors[0].message.strip().splitlines()[0] if errors else "run failed"
            raise DemoRunError(f"{job} failed (run {result.run_id[:8]}): {message}")
        return result


def meta(result, key: str) -> dict:
    """The metadata values of the materialization of asset ``key`` in ``result``."""
    for event in result.get_asset_materialization_events():
        if event.asset_key.to_user_string() == key:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    return {}


def failed_check_line(result) -> str:
    """One line per failed blocking check: its name, asset, observed value(s) and threshold."""
    lines = []
    for ev in result.get_asset_check_evaluations():
        if ev.passed:
            continue
        values = {k: v.value for k, v in ev.metadata.items() if isinstance(v.value, int | float)}
        observed = ", ".join(f"{k}={v:g}" for k, v in values.items() if "threshold" not in k)
        limits = ", ".join(f"{v:g}" for k, v in values.items() if "threshold" in k)
        lines.append(
            f"check {ev.check_name} on {ev.asset_key.to_user_string()} failed: "
            f"observed {observed or 'n/a'}" + (f" (threshold {limits})" if limits else "")
        )
    return "; ".join(lines) or "no check failed"


class Receiver:
    """A local webhook receiver that checks each alert's signature, for the demo."""

    def __init__(self, secret: str) -> None:
        import http.server
        import threading

        from quant_pipelines.alerts import SignatureError, verify_signature

        received: list[dict] = []
        self.received = received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    verify_signature(body, dict(self.headers), secret)
                except SignatureError as exc:
                    self.send_response(401)
                    self.end_headers()
                    received.append({"verified": False, "reason": exc.reason})
                    return
                received.append({"verified": True, "body": json.loads(body)})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_bad_batch(folder: Path, day: str, seed: int) -> list[str]:
    """Writes the equity bars of ``day`` as CSV, with AAPL's high below its close."""
    from quant_pipelines.marketdata import SyntheticSource, load_universe

    folder.mkdir(parents=True, exist_ok=True)
    symbols = [s.name for s in load_universe().by_asset_class("equity")]
    for symbol in symbols:
        bars = SyntheticSource(seed=seed).bars(symbol, day, day)
        if symbol == "AAPL":
            bars["high"] = bars[["open", "close"]].min(axis=1) * 0.99
        out = bars.reset_index()
        out["ts"] = out["ts"].dt.strftime("%Y-%m-%d %H:%M:%S")
        out.to_csv(folder / f"{symbol}.csv", index=False)
    return symbols
