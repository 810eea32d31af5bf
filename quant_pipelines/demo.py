"""``quant-pipelines demo``: the workflow on the embedded default, as real Dagster runs."""

from __future__ import annotations

import os
import time

import dagster as dg
import pandas as pd

from quant_pipelines.settings import load_settings


def _step(n: int, text: str) -> float:
    print(f"[{n}] {text} ...", flush=True)
    return time.perf_counter()


def _last_closed_keys(asset_class: str, count: int, now: pd.Timestamp) -> list[str]:
    from quant_pipelines.defs.partitions import trading_day_partitions
    from quant_pipelines.marketdata.calendars import session_bounds

    keys = trading_day_partitions(asset_class).get_partition_keys()[-(count + 3) :]
    labels = pd.DatetimeIndex(pd.to_datetime(keys))
    _, closes = session_bounds(asset_class, labels)
    closes = closes.tz_localize("UTC") if closes.tz is None else closes
    closed = [k for k, c in zip(keys, closes, strict=True) if c <= now]
    return closed[-count:]


def run_demo(*, sessions: int = 504) -> int:
    """Runs the demo and prints a summary; returns a process exit code."""
    settings = load_settings()
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    settings.dagster_home.mkdir(parents=True, exist_ok=True)

    t = _step(1, "MongoDB")
    if settings.mongodb_is_embedded:
        from quant_pipelines.storage import EmbeddedMongo

        server = EmbeddedMongo(settings.dagster_home / "mongo", port=settings.embedded_mongo_port)
        status = server.start()
        print(f"    {status.describe()}")
    else:
        print(f"    using MONGODB_URI {settings.redacted_uri}")

    from quant_pipelines.definitions import defs
    from quant_pipelines.defs.market_data import asset_classes_in_universe

    instance = dg.DagsterInstance.get()
    now = pd.Timestamp.now(tz="UTC")
    summary: list[tuple[str, str, int, dict[str, bool]]] = []
    t = _step(2, f"ingest the default universe, last {sessions} sessions per asset class")
    for asset_class in asset_classes_in_universe():
        keys = _last_closed_keys(asset_class, sessions, now)
        job = defs.resolve_job_def(f"ingest_{asset_class}_bars_job")
        result = job.execute_in_process(
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
                "quant_pipelines/origin": "demo",
            },
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            raise_on_error=False,
        )
        # A range run records one materialization per partition, all with the run's metadata.
        events = result.get_asset_materialization_events()
        rows = int(events[0].materialization.metadata["row_count"].value) if events else 0
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        summary.append((asset_class, f"{keys[0]}..{keys[-1]}", rows, checks))
        state = "ok" if result.success else "FAILED"
        print(
            f"    {asset_class:7s} {keys[0]}..{keys[-1]}: {rows} bars, "
            f"run {result.run_id[:8]} {state}"
        )
    print(f"    took {time.perf_counter() - t:.1f}s")

    print("\nSummary")
    for asset_class, span, rows, checks in summary:
        passed = ", ".join(
            f"{name}={'pass' if ok else 'FAIL'}" for name, ok in sorted(checks.items())
        )
        print(f"  market_bars/{asset_class:7s} {span}  {rows:6d} bars  {passed}")
    print(
        f"\nData: MongoDB {settings.redacted_uri} database {settings.mongodb_db!r}; "
        f"runs recorded in {settings.dagster_home}.\n"
        "Open the Dagster UI with `make dev` (http://127.0.0.1:3000): Assets → market_bars."
    )
    return 0
