from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._core.definitions.freshness import CronFreshnessPolicy
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value
from dagster._utils.schedules import cron_string_iterator
from pymongo import monitoring

from quant_pipelines.definitions import defs, parallel_study_job_def
from quant_pipelines.defs.resources import (
    AlertTransportsResource,
    MongoResource,
    bound_resources,
    mongo_resource,
)
from quant_pipelines.settings import Settings, embedded_credentials_path
from quant_pipelines.storage import EmbeddedMongo, collections, make_client

NY = ZoneInfo("America/New_York")
ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent


def test_every_job_schedule_and_sensor_resolves() -> None:
    repo = defs.get_repository_def()
    jobs = {j.name: j for j in repo.get_all_jobs()}
    assert {"ingest_equity_bars_job", "ingest_fx_bars_job", "ingest_crypto_bars_job"} <= set(jobs)
    for name in jobs:
        if name.startswith("__"):
            continue
        job = defs.resolve_job_def(name)  # every job, not a sample
        assert name.endswith("_job"), name
        assert job.asset_layer.executable_asset_keys or job.graph.node_defs, name
    for schedule in repo.schedule_defs:
        assert schedule.name.endswith("_schedule")
        assert schedule.job_name in jobs, schedule.name
    for sensor in repo.sensor_defs:
        assert sensor.name.endswith("_sensor")
        for target in sensor.targets:
            assert target.job_name in jobs or target.job_name.startswith("__"), sensor.name


def test_sensors_on_by_default_are_automation_and_universe_symbols() -> None:
    running = {
        s.name
        for s in defs.get_repository_def().sensor_defs
        if s.default_status == dg.DefaultSensorStatus.RUNNING
    }
    assert {"default_automation_condition_sensor", "universe_symbols_sensor"} <= running
    automation = defs.resolve_sensor_def("default_automation_condition_sensor")
    assert isinstance(automation, dg.AutomationConditionSensorDefinition)
    graph = defs.resolve_asset_graph()
    assert dg.AssetKey("kpi_report") in automation.asset_selection.resolve(graph)


@pytest.mark.parametrize(
    ("asset_class", "deadline", "timezone"),
    [
        ("equity", "0 22 * * 1-5", "America/New_York"),  # XNYS close 16:00 + 6 h
        ("fx", "0 6 * * 2-6", "UTC"),  # the UTC day of Mon..Fri ends at 00:00 UTC
        ("crypto", "0 6 * * *", "UTC"),  # every UTC midnight + 6 h
    ],
)
def test_market_bars_carry_a_freshness_policy_after_their_session_close(
    asset_class: str, deadline: str, timezone: str
) -> None:
    key = dg.AssetKey(["market_bars", asset_class])
    policy = defs.resolve_assets_def(key).specs_by_key[key].freshness_policy
    assert isinstance(policy, CronFreshnessPolicy)
    assert policy.deadline_cron == deadline and policy.timezone == timezone
    assert policy.lower_bound_delta == dt.timedelta(hours=6)


def test_bulk_writers_share_the_mongo_bulk_pool() -> None:
    for asset_class in ("equity", "fx", "crypto"):
        assets_def = defs.resolve_assets_def(dg.AssetKey(["market_bars", asset_class]))
        assert {n.pool for n in assets_def.node_def.iterate_op_defs()} == {"mongo_bulk"}


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


def test_the_optimization_request_sensor_targets_its_job() -> None:
    sensor = defs.resolve_sensor_def("optimization_request_sensor")
    assert sensor.job_name == "optimize_strategy_job"


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ) | {"DAGSTER_HOME": str(tmp_path), "VIRTUAL_ENV": str(VENV)}
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.slow
def test_dg_check_defs_passes(tmp_path: Path) -> None:
    """``dg`` finds the defs folder through [tool.dg] and loads every module under it."""
    out = _run([str(VENV / "bin" / "dg"), "check", "defs"], tmp_path)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert "All definitions loaded successfully" in out.stdout + out.stderr


@pytest.mark.slow
def test_dagster_definitions_validate_passes(tmp_path: Path) -> None:
    dagster = VENV / "bin" / "dagster"
    out = _run(
        [str(dagster), "definitions", "validate", "-m", "quant_pipelines.definitions"], tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "All code locations passed validation" in out.stdout + out.stderr


def test_parallel_study_job_def_resolves_from_fresh_definitions() -> None:
    job = parallel_study_job_def()
    assert job.name == "parallel_study_job"
    assert job is not defs.resolve_job_def("parallel_study_job")  # reconstructed, not shared


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


class _CommandCounter(monitoring.CommandListener):
    """Counts the commands a client sends, by name (no mock: the real driver's events)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.counts[event.command_name] = self.counts.get(event.command_name, 0) + 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def test_repos_pings_and_ensures_indexes_once_per_process(mongo_uri: str, db_name: str) -> None:
    counter = _CommandCounter()
    resource = MongoResource(uri=mongo_uri, database=db_name, timeout_ms=30_000)
    resource._client = make_client(mongo_uri, event_listeners=[counter])  # observe its client
    try:
        for _ in range(20):
            repos = resource.repos()
            resource.bars()
            resource.get_db()
        first = counter.counts.get("createIndexes", 0)
        assert first == len(collections.UNIQUE_KEYS)  # one per collection, on the first call
        assert counter.counts.get("ping", 0) <= 1
        assert repos.bars.collection.name == "bars" and repos.batches.get("nope") is None
        # A second resource over the same server and database (another step) ensures nothing.
        other = MongoResource(uri=mongo_uri, database=db_name, timeout_ms=30_000)
        other._client = resource._client
        other.repos()
        assert counter.counts.get("createIndexes", 0) == first
        names = {i["name"] for i in resource.get_client()[db_name].bars.list_indexes()}
        assert "uniq_symbol_ts" in names
    finally:
        resource.get_client().drop_database(db_name)
        resource.teardown_after_execution(None)


@dg.asset
def _alert_channels(alert_transports: AlertTransportsResource) -> dg.MaterializeResult:
    """Reports which alert transports the bound resource builds."""
    found = [repr(t) for t in alert_transports.transports()]
    return dg.MaterializeResult(metadata={"transports": dg.MetadataValue.json(found)})


def _channels(resources: dict) -> list[str]:
    result = dg.materialize([_alert_channels], resources={"alert_transports": resources})
    return result.get_asset_materialization_events()[0].materialization.metadata["transports"].value


_ALERT_VARS = (
    "ALERT_WEBHOOK_URL",
    "ALERT_WEBHOOK_SECRET",
    "SLACK_WEBHOOK_URL",
    "SLACK_BOT_TOKEN",
)


def test_unset_alert_variables_disable_channels_and_do_not_fail_loading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in _ALERT_VARS:
        monkeypatch.delenv(name, raising=False)
    loaded = bound_resources()
    assert _channels(loaded["alert_transports"]) == []


def test_alert_secrets_are_bound_by_variable_name_and_resolved_at_run_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in _ALERT_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALERT_WEBHOOK_URL", "https://hooks.example.test/alerts")
    monkeypatch.setenv("ALERT_WEBHOOK_SECRET", "s3cret-signing-key")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/xyz")
    transports = bound_resources()["alert_transports"]
    assert isinstance(transports.webhook.secret, dg.EnvVar)  # the UI shows the name only
    channels = _channels(transports)
    assert channels[0].startswith("WebhookTransport(") and "s3cret" not in channels[0]
    assert channels[1].startswith("SlackTransport(")  # the incoming webhook: no bot token

    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test-token")
    channels = _channels(bound_resources()["alert_transports"])
    assert channels[1] == "SlackBotTransport(channel='#data-quality')"  # the bot wins
