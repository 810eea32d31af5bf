"""``quant-pipelines demo``: the research loop on the embedded default, as real Dagster runs.

Every step runs a job of the project's Definitions against the Dagster instance in
``DAGSTER_HOME``, so ``make dev`` shows the runs, their metadata and checks afterwards.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd

from quant_pipelines.settings import load_settings

_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class _Steps:
    def __init__(self) -> None:
        self.n = 0
        self.started = time.perf_counter()

    def run(self, title: str, fn: Callable[[], str]) -> None:
        self.n += 1
        print(f"[{self.n}] {title} ...", flush=True)
        start = time.perf_counter()
        detail = fn()
        print(f"    {detail} ({time.perf_counter() - start:.1f}s)", flush=True)


def _last_closed_keys(asset_class: str, count: int, now: pd.Timestamp) -> list[str]:
    from quant_pipelines.defs.partitions import trading_day_partitions
    from quant_pipelines.marketdata.calendars import session_bounds

    keys = trading_day_partitions(asset_class).get_partition_keys()[-(count + 3) :]
    labels = pd.DatetimeIndex(pd.to_datetime(keys))
    _, closes = session_bounds(asset_class, labels)
    closes = closes.tz_localize("UTC") if closes.tz is None else closes
    closed = [k for k, c in zip(keys, closes, strict=True) if c <= now]
    return closed[-count:]


def _execute(defs: dg.Definitions, instance: dg.DagsterInstance, job: str, **kwargs):
    config = kwargs.pop("run_config", {})
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance,
        run_config={**_QUIET, **config},
        raise_on_error=False,
        tags={"quant_pipelines/origin": "demo", **kwargs.pop("tags", {})},
        **kwargs,
    )
    if not result.success:
        failures = [e.step_failure_data.error.message for e in result.get_step_failure_events()]
        raise SystemExit(f"demo step {job} failed (run {result.run_id}): {failures[:1]}")
    return result


def _meta(result, key: str) -> dict:
    for event in result.get_asset_materialization_events():
        if event.asset_key.to_user_string() == key:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    return {}


class _Receiver:
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


def _write_bad_batch(folder: Path, day: str, seed: int) -> list[str]:
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


def run_demo(*, sessions: int = 360, trials: int = 30, rl_timesteps: int = 4_000) -> int:
    """Runs the demo and prints a summary; returns a process exit code."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = load_settings()
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    steps = _Steps()

    def mongo() -> str:
        if not settings.mongodb_is_embedded:
            return f"using MONGODB_URI {settings.redacted_uri}"
        from quant_pipelines.storage import EmbeddedMongo

        server = EmbeddedMongo(
            settings.dagster_home / "mongo",
            port=settings.embedded_mongo_port,
            app_db=settings.mongodb_db,
        )
        return server.start().describe()

    steps.run("MongoDB", mongo)
    settings = load_settings()  # the first start provisions the credentials: read them now

    from quant_pipelines.backtest import get_strategy, list_strategies
    from quant_pipelines.definitions import build_definitions
    from quant_pipelines.defs.market_data import asset_classes_in_universe

    defs = build_definitions()  # built now, so it binds the settings of this process
    instance = dg.DagsterInstance.get()
    now = pd.Timestamp.now(tz="UTC")
    summary: dict[str, object] = {}

    def ingest() -> str:
        lines = []
        for asset_class in asset_classes_in_universe():
            keys = _last_closed_keys(asset_class, sessions, now)
            result = _execute(
                defs,
                instance,
                f"ingest_{asset_class}_bars_job",
                tags={
                    "dagster/asset_partition_range_start": keys[0],
                    "dagster/asset_partition_range_end": keys[-1],
                },
            )
            checks = result.get_asset_check_evaluations()
            failed = sorted({c.check_name for c in checks if not c.passed})
            bars = _meta(result, f"market_bars/{asset_class}")
            scores = _meta(result, f"bar_anomaly_scores/{asset_class}")
            lines.append(
                f"{asset_class}: {bars.get('row_count', 0)} bars {keys[0]}..{keys[-1]}, "
                f"anomalies warning={scores.get('warning', 0)} critical={scores.get('critical', 0)}"
                + (f", checks not passing: {', '.join(failed)}" if failed else ", checks pass")
            )
        return "\n    ".join(lines)

    steps.run(f"ingest, check and score the universe ({sessions} sessions per class)", ingest)

    from quant_pipelines.defs.resources import MarketDataSource
    from quant_pipelines.storage import make_client
    from quant_pipelines.storage.anomaly_workflow import transition

    db = make_client(settings.mongodb_uri)[settings.mongodb_db]
    bad_day = _last_closed_keys("equity", 1, now)[0]

    def bad_batch() -> str:
        folder = settings.dagster_home / "demo" / "bad_batch"
        _write_bad_batch(folder, bad_day, MarketDataSource().seed)
        result = defs.resolve_job_def("ingest_equity_bars_job").execute_in_process(
            instance=instance,
            run_config=_QUIET,
            partition_key=bad_day,
            resources={"market_data": MarketDataSource(kind="files", path=str(folder))},
            raise_on_error=False,
            tags={"quant_pipelines/origin": "demo"},
        )
        gate = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
        queued = db.alert_outbox.count_documents({"status": "pending"})
        return (
            f"run {result.run_id[:8]} {'FAILED as intended' if not result.success else 'passed?'}: "
            f"bars_have_valid_ohlc={'pass' if gate.get('bars_have_valid_ohlc') else 'FAIL'}, "
            f"scoring skipped, {queued} alert(s) queued"
        )

    steps.run(f"a bad equity batch for {bad_day}: the blocking check stops it", bad_batch)

    secret = secrets.token_hex(16)
    receiver = _Receiver(secret)
    os.environ["ALERT_WEBHOOK_URL"] = receiver.url
    os.environ["ALERT_WEBHOOK_SECRET"] = secret

    def deliver() -> str:
        meta = _execute(defs, instance, "alert_delivery_job")
        sent = [r for r in receiver.received if r["verified"]]
        summary["alerts"] = len(sent)
        first = sent[0]["body"] if sent else {}
        return (
            f"run {meta.run_id[:8]}: {len(sent)} signed alert(s) received and verified at "
            f"{receiver.url}"
            + (f"; first: {first.get('symbol')} {first.get('rule')}" if first else "")
        )

    steps.run("deliver the alerts to a local webhook receiver", deliver)
    receiver.close()

    def analyst() -> str:
        anomaly = db.anomalies.find_one({"status": "open", "detector": {"$regex": "^validation"}})
        if anomaly is None:
            return "no open alert to act on"
        transition(db, anomaly["_id"], "ack", note="looking at the feed", actor="demo-analyst")
        transition(
            db, anomaly["_id"], "resolve", note="vendor resent the bar", actor="demo-analyst"
        )
        good = _execute(defs, instance, "ingest_equity_bars_job", partition_key=bad_day)
        gate = {c.check_name: c.passed for c in good.get_asset_check_evaluations()}
        state = "pass" if gate.get("bars_have_valid_ohlc") else "FAIL"
        return (
            f"alert {anomaly['_id']} acknowledged and resolved; {bad_day} re-ingested from the "
            f"good source: bars_have_valid_ohlc={state}"
        )

    steps.run("the analyst resolves the alert; the fixed batch is re-ingested", analyst)

    def quality_models() -> str:
        result = _execute(defs, instance, "quality_models_job")
        prophet = _meta(result, "prophet_models")
        thresholds = _meta(result, "anomaly_thresholds")
        return (
            f"Prophet models {prophet.get('version')} for {prophet.get('symbols_fitted')} symbols; "
            f"thresholds {thresholds.get('version')}"
        )

    steps.run("fit Prophet models and calibrate anomaly thresholds", quality_models)

    def optimize() -> str:
        families: dict[str, str] = {}
        for name in list_strategies():
            families.setdefault(get_strategy(name).family, name)
        lines = []
        for family, strategy in families.items():
            key = dg.MultiPartitionKey({"strategy": strategy, "asset_class": "equity"})
            result = _execute(
                defs,
                instance,
                "optimize_strategy_job",
                partition_key=key,
                run_config={
                    "ops": {
                        "optimization_study": {
                            "config": {"n_trials": trials, "seed": 7, "lookback_days": 730}
                        }
                    }
                },
            )
            meta = _meta(result, "optimization_study")
            lines.append(
                f"{family:14s} {strategy:20s} best on validation "
                f"{meta.get('best_validation_value', 0):+.3f} "
                f"vs baseline {meta.get('baseline_value', 0):+.3f}, "
                f"DSR {meta.get('best_deflated_sharpe', 0):.2f}, PBO {meta.get('pbo', 1):.2f}, "
                f"{meta.get('trials_per_hour', 0):,.0f} trials/h"
            )
        return "\n    ".join(lines)

    steps.run(f"Optuna study per strategy family ({trials} trials each, equity)", optimize)

    def leaderboard() -> str:
        meta = _meta(
            _execute(defs, instance, "optimization_leaderboard_job"), "optimization_leaderboard"
        )
        summary["leaderboard"] = meta
        return (
            f"{meta.get('rows', 0)} rows ranked by {meta.get('rank_by', 'validation')}; "
            f"{meta.get('promoted', 0)} of {meta.get('studies', 0)} studies promoted by the "
            f"overfitting gate (best promoted holdout Sharpe: "
            f"{meta.get('best_promoted_holdout_sharpe', 'none promoted')}); "
            "see docs/overfitting.md"
        )

    steps.run("build the leaderboard", leaderboard)

    def rl() -> str:
        config = {"algo": "ppo", "total_timesteps": rl_timesteps, "seed": 0, "holdout_days": 120}
        result = _execute(
            defs,
            instance,
            "rl_training_job",
            partition_key="SPY",
            run_config={
                "ops": {"rl_policy": {"config": config}, "rl_policy_replay": {"config": config}}
            },
        )
        policy = _meta(result, "rl_policy")
        replay = _meta(result, "rl_policy_replay")
        summary["rl"] = replay
        return (
            f"policy {policy.get('policy_id')} (sha256 {str(policy.get('sha256'))[:12]}…); "
            f"held-out Sharpe {replay.get('sharpe', 0):.3f}, max drawdown "
            f"{replay.get('max_drawdown', 0):.3f} (limit {replay.get('drawdown_limit', 0):.2f}, "
            f"compliant={replay.get('drawdown_compliant')}), "
            f"episode length {replay.get('episode_length_mean', 0):.0f}"
            f"±{replay.get('episode_length_std', 0):.0f}"
        )

    steps.run(f"train an RL policy on SPY ({rl_timesteps} PPO steps) and replay it", rl)

    def dashboard() -> str:
        meta = _meta(_execute(defs, instance, "anomaly_dashboard_job"), "anomaly_dashboard")
        summary["quality"] = meta
        return (
            f"anomalies per batch {meta.get('anomalies_per_batch', 0):.2f}, "
            f"open {meta.get('open', 0)}, "
            f"false-positive rate {meta.get('false_positive_rate', 0):.3f}"
        )

    steps.run("anomaly dashboard and KPIs", dashboard)

    def report() -> str:
        meta = _meta(_execute(defs, instance, "kpi_report_job"), "kpi_report")
        summary["kpis"] = meta
        return f"{len([k for k in meta if k not in {'report', 'periods_recorded'}])} KPIs recorded"

    steps.run("KPI report", report)

    from quant_pipelines.defs.kpis import LABELS
    from quant_pipelines.storage.kpis import section7_metrics

    print("\nSection-7 metrics")
    for name, value in section7_metrics(db).items():
        shown = "n/a" if value is None else f"{value:,.4g}"
        print(f"  {LABELS[name]:52s} {shown}")

    print(f"\nDone in {time.perf_counter() - steps.started:.0f}s.")
    print(
        f"Data: MongoDB {settings.redacted_uri} database {settings.mongodb_db!r}; "
        f"runs in {settings.dagster_home}.\n"
        "Look in the UI with `make dev` (http://127.0.0.1:3000): Assets → market_bars, "
        "bar_anomaly_scores, optimization_leaderboard (tables per objective, promotions), "
        "rl_policy_replay; Runs for every step.\n"
        "`quant-pipelines optuna-dashboard` opens the studies on http://127.0.0.1:8080."
    )
    return 0
