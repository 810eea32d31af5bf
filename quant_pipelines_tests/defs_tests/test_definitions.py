from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value
from dagster._utils.schedules import cron_string_iterator

from quant_pipelines.definitions import defs
from quant_pipelines.defs.resources import MongoResource, mongo_resource
from quant_pipelines.settings import Settings, embedded_credentials_path
from quant_pipelines.storage import EmbeddedMongo

NY = ZoneInfo("America/New_York")


def test_every_job_schedule_and_sensor_resolves() -> None:
    repo = defs.get_repository_def()
    jobs = repo.get_all_jobs()
    names = {j.name for j in jobs}
    assert {"ingest_equity_bars_job", "ingest_fx_bars_job", "ingest_crypto_bars_job"} <= names
    for schedule in repo.schedule_defs:
        for target in schedule.targets if hasattr(schedule, "targets") else []:
            assert target
        assert schedule.name.endswith("_schedule")
    for sensor in repo.sensor_defs:
        assert sensor.name.endswith("_sensor")
    for job in jobs:
        assert job.name.endswith("_job") or job.name.startswith("__")


def test_market_bars_assets_carry_their_checks() -> None:
    graph = defs.resolve_asset_graph()
    for asset_class in ("equity", "fx", "crypto"):
        key = dg.AssetKey(["market_bars", asset_class])
        assert key in graph.get_all_asset_keys()
        checks = {c.name for c in graph.get_check_keys_for_assets([key])}
        assert checks == {
            "bars_have_valid_ohlc",
            "bars_have_no_duplicates",
            "bars_cover_the_session",
            "bars_are_fresh",
        }


def _requests(when: dt.datetime) -> dict[str, str]:
    requested = {}
    for asset_class in ("equity", "fx", "crypto"):
        schedule = defs.resolve_schedule_def(f"daily_{asset_class}_ingestion_schedule")
        context = dg.build_schedule_context(
            scheduled_execution_time=when, repository_def=defs.get_repository_def()
        )
        result = schedule.evaluate_tick(context)
        for request in result.run_requests or []:
            requested[schedule.job_name] = request.partition_key
        if not result.run_requests:
            assert result.skip_message and asset_class in result.skip_message
    return requested


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        # A normal Tuesday: every class ingests that day.
        (
            dt.datetime(2024, 3, 5, 20, 30, tzinfo=NY),
            {
                "ingest_equity_bars_job": "2024-03-05",
                "ingest_fx_bars_job": "2024-03-05",
                "ingest_crypto_bars_job": "2024-03-05",
            },
        ),
        # Independence Day: NYSE closed, FX and crypto trade.
        (
            dt.datetime(2024, 7, 4, 20, 30, tzinfo=NY),
            {"ingest_fx_bars_job": "2024-07-04", "ingest_crypto_bars_job": "2024-07-04"},
        ),
        # Saturday: crypto only.
        (dt.datetime(2024, 3, 9, 20, 30, tzinfo=NY), {"ingest_crypto_bars_job": "2024-03-09"}),
    ],
)
def test_daily_schedule_requests_only_closed_sessions(
    when: dt.datetime, expected: dict[str, str]
) -> None:
    assert _requests(when) == expected


def test_daily_schedule_runs_after_the_new_york_close() -> None:
    schedule = defs.resolve_schedule_def("daily_equity_ingestion_schedule")
    assert schedule.execution_timezone == "America/New_York"
    ticks = cron_string_iterator(
        dt.datetime(2024, 3, 1, tzinfo=NY).timestamp(),
        schedule.cron_schedule,
        schedule.execution_timezone,
    )
    for _ in range(10):
        tick = next(ticks).astimezone(NY)
        assert (tick.hour, tick.minute) == (20, 30)  # after the 16:00 close


def test_next_50_ticks_of_every_schedule_fall_outside_the_nyse_session() -> None:
    from quant_pipelines.marketdata import is_session_open

    repo = defs.get_repository_def()
    assert repo.schedule_defs
    start = dt.datetime(2026, 11, 23, tzinfo=NY).timestamp()
    for schedule in repo.schedule_defs:
        ticks = cron_string_iterator(start, schedule.cron_schedule, schedule.execution_timezone)
        for _ in range(50):
            tick = next(ticks)
            assert not is_session_open("XNYS", tick), f"{schedule.name} ticks at {tick}"


def test_every_job_is_resolvable_and_has_its_assets() -> None:
    for name in (
        "ingest_equity_bars_job",
        "optimize_strategy_job",
        "optimization_leaderboard_job",
        "rl_training_job",
    ):
        job = defs.resolve_job_def(name)
        assert job.asset_layer.executable_asset_keys, name
    assert (
        defs.resolve_sensor_def("optimization_request_sensor").job_name == "optimize_strategy_job"
    )


@pytest.mark.slow
def test_dagster_definitions_validate_passes(tmp_path) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    dagster = Path(sys.executable).with_name("dagster")
    env = dict(os.environ) | {"DAGSTER_HOME": str(tmp_path)}
    out = subprocess.run(
        [str(dagster), "definitions", "validate", "-m", "quant_pipelines.definitions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "All code locations passed validation" in out.stdout + out.stderr


@dg.asset
def _uses_mongo(mongo: MongoResource) -> None:
    """An asset that needs the resource, so the snapshot describes it."""


def test_the_embedded_password_is_in_no_snapshot_the_ui_shows(
    mongo_server: EmbeddedMongo, tmp_path: Path
) -> None:
    """The resource carries the credentials file's path, not the app user's password; the
    client still connects as that user."""
    from quant_pipelines.owner_files import write_owner_only

    credentials = mongo_server.credentials()
    assert credentials is not None
    secret = credentials.app_password.get()
    home = tmp_path / "home"
    write_owner_only(embedded_credentials_path(home), mongo_server.credentials_file.read_text())
    settings = Settings(
        mongodb_uri=mongo_server.app_uri,
        mongodb_db=credentials.app_db,
        mongodb_is_embedded=True,
        dagster_home=home,
    )
    resource = mongo_resource(settings)
    repo = dg.Definitions(assets=[_uses_mongo], resources={"mongo": resource})
    snapshot = serialize_value(RepositorySnap.from_def(repo.get_repository_def()))
    assert "credentials.json" in snapshot  # the resource is in the snapshot ...
    assert secret not in snapshot and quote(secret, safe="") not in snapshot  # ... not the key
    assert secret not in repr(resource) and secret not in str(resource.model_dump())
    client = resource.get_client()
    try:
        status = client.admin.command("connectionStatus")["authInfo"]["authenticatedUsers"]
        assert [u["user"] for u in status] == [credentials.app_user]
    finally:
        resource.teardown_after_execution(None)
