"""``quant-pipelines demo``: the research loop on the embedded default, as real Dagster runs.

Every step runs a job of the project's Definitions (resolved by name from
``quant_pipelines.definitions``) against the Dagster instance in ``DAGSTER_HOME``, so
``make dev`` shows the runs, their metadata and checks afterwards. The output is one numbered
line per step with its elapsed time (redrawn live on a terminal), one line per result, and a
summary table; Dagster's beta/preview notices and event log stay out of the way (the UI has
the events), and the intended failure is one line naming the failed check and its value.
"""

from __future__ import annotations

import os
import secrets

import dagster as dg
import pandas as pd

from quant_pipelines.cli._demo_console import Console, Progress, StepResult, quiet_dagster_notices
from quant_pipelines.cli._demo_runs import (
    DemoRunError,
    Receiver,
    Runner,
    failed_check_line,
    last_closed_keys,
    meta,
    write_bad_batch,
)
from quant_pipelines.settings import Settings, load_settings

_STEPS = 11


def run_demo(*, sessions: int = 360, trials: int = 30, rl_timesteps: int = 4_000) -> int:
    """Runs the demo, printing its steps and a summary table.

    Args:
        sessions: Trading sessions to ingest per asset class.
        trials: Optuna trials per study.
        rl_timesteps: PPO timesteps of the RL policy.

    Returns:
        The process exit code: 0, or 1 when a run that should succeed failed.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = load_settings()
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    print(
        f"quant-pipelines demo: the research loop as Dagster runs in {os.environ['DAGSTER_HOME']}"
    )
    console = Console(_STEPS)
    try:
        with quiet_dagster_notices():
            _Demo(console, sessions, trials, rl_timesteps).run()
    except DemoRunError as exc:
        console.summary()
        print(f"\nThe demo stopped: {exc}\nThe run's events are in the UI (`make dev`).")
        return 1
    console.summary()
    settings = load_settings()
    print(
        f"\nData: MongoDB {settings.redacted_uri} database {settings.mongodb_db!r}; "
        f"runs in {os.environ['DAGSTER_HOME']}.\n"
        "Look in the UI with `make dev` (http://127.0.0.1:3000): Assets → market_bars, "
        "bar_anomaly_scores, optimization_leaderboard (tables per objective, promotions), "
        "rl_policy_replay; Runs for every step.\n"
        "`quant-pipelines optuna-dashboard` opens the studies on http://127.0.0.1:8080."
    )
    return 0


class _Demo:
    """The demo's steps, in order; each returns its key figure for the summary."""

    def __init__(self, console: Console, sessions: int, trials: int, rl_timesteps: int) -> None:
        self.console = console
        self.sessions, self.trials, self.rl_timesteps = sessions, trials, rl_timesteps
        self.now = pd.Timestamp.now(tz="UTC")

    def run(self) -> None:
        """Runs every step; the MongoDB client is closed at the end."""
        step = self.console.step
        step("start MongoDB", lambda _: self.mongo(load_settings()), short="MongoDB")
        self.settings = load_settings()  # the first start provisions the credentials
        from quant_pipelines.definitions import build_definitions
        from quant_pipelines.storage import make_client

        # Built now, so the Definitions bind the settings of this process.
        self.runs = Runner(build_definitions(), dg.DagsterInstance.get())
        client = make_client(self.settings.mongodb_uri)
        self.db = client[self.settings.mongodb_db]
        equity = self.runs.job("ingest_equity_bars_job")
        self.bad_day = last_closed_keys(equity, "equity", 1, self.now)[0]
        try:
            for short, title, fn in (
                ("ingest", f"ingest, check and score the universe ({self.sessions} sessions "
                 "per class)", self.ingest),
                ("bad equity batch", f"a bad equity batch for {self.bad_day}: the blocking "
                 "check stops it", self.bad_batch),
                ("alert delivery", "deliver the alerts to a local webhook receiver", self.deliver),
                ("analyst", "the analyst resolves the alert; the fixed batch is re-ingested",
                 self.analyst),
                ("quality models", "fit Prophet models and calibrate anomaly thresholds",
                 self.quality_models),
                ("optimization", f"Optuna study per strategy family ({self.trials} trials "
                 "each, equity)", self.optimize),
                ("leaderboard", "build the leaderboard", self.leaderboard),
                ("RL policy", f"train an RL policy on SPY ({self.rl_timesteps} PPO steps) and "
                 "replay it", self.rl),
                ("anomaly dashboard", "anomaly dashboard and KPIs", self.dashboard),
                ("KPI report", "KPI report: the section-7 metrics", self.report),
            ):  # fmt: skip
                step(title, fn, short=short)
        finally:
            client.close()

    @staticmethod
    def mongo(settings: Settings) -> StepResult:
        if not settings.mongodb_is_embedded:
            return StepResult(f"using MONGODB_URI {settings.redacted_uri}")
        from quant_pipelines.storage import EmbeddedMongo

        server = EmbeddedMongo(
            settings.dagster_home / "mongo",
            port=settings.embedded_mongo_port,
            app_db=settings.mongodb_db,
        )
        return StepResult(server.start().describe())

    def ingest(self, progress: Progress) -> StepResult:
        from quant_pipelines.marketdata import load_universe

        present = set(load_universe().asset_classes)
        classes = [c for c in ("equity", "fx", "crypto") if c in present]
        lines, total_bars, failing = [], 0, 0
        for asset_class in classes:
            progress.start(asset_class, len(classes))
            job = f"ingest_{asset_class}_bars_job"
            keys = last_closed_keys(self.runs.job(job), asset_class, self.sessions, self.now)
            result = self.runs(
                job,
                tags={
                    "dagster/asset_partition_range_start": keys[0],
                    "dagster/asset_partition_range_end": keys[-1],
                },
            )
            failed = sorted(
                {c.check_name for c in result.get_asset_check_evaluations() if not c.passed}
            )
            failing += len(failed)
            bars = meta(result, f"market_bars/{asset_class}")
            scores = meta(result, f"bar_anomaly_scores/{asset_class}")
            rows = int(bars.get("dagster/row_count", bars.get("row_count", 0)) or 0)
            total_bars += rows
            lines.append(
                f"{asset_class}: {rows:,} bars {keys[0]}..{keys[-1]}, anomalies "
                f"warning={scores.get('warning', 0)} critical={scores.get('critical', 0)}"
                + (f", checks not passing: {', '.join(failed)}" if failed else ", checks pass")
            )
            progress.advance(f"{asset_class} ingested")
        checks = "all checks pass" if not failing else f"{failing} check(s) not passing"
        return StepResult(f"{total_bars:,} bars in {len(classes)} classes, {checks}", lines)

    def bad_batch(self, _: Progress) -> StepResult:
        from quant_pipelines.defs.resources import MarketDataSource

        folder = self.settings.dagster_home / "demo" / "bad_batch"
        write_bad_batch(folder, self.bad_day, MarketDataSource().seed)
        result = self.runs(
            "ingest_equity_bars_job",
            expect_success=False,
            partition_key=self.bad_day,
            resources={"market_data": MarketDataSource(kind="files", path=str(folder))},
        )
        queued = self.db.alert_outbox.count_documents({"status": "pending"})
        if result.success:
            return StepResult(
                "the bad batch passed: its check did not stop it", outcome="UNEXPECTED"
            )
        return StepResult(
            failed_check_line(result),
            [f"run {result.run_id[:8]} stopped before scoring; {queued} alert(s) queued"],
            outcome="failed as intended",
            brief=f"run stopped by its blocking check; {queued} alert(s) queued",
        )

    def deliver(self, _: Progress) -> StepResult:
        from dagster_slack import SlackResource

        from quant_pipelines.defs.resources import AlertTransportsResource, WebhookResource

        secret = secrets.token_hex(16)
        receiver = Receiver(secret)
        transports = AlertTransportsResource(
            webhook=WebhookResource(url=receiver.url, secret=secret), slack=SlackResource(token="")
        )
        try:
            result = self.runs("alert_delivery_job", resources={"alert_transports": transports})
        finally:
            receiver.close()
        sent = [r for r in receiver.received if r["verified"]]
        first = sent[0]["body"] if sent else {}
        return StepResult(
            f"{len(sent)} signed alert(s) received and verified",
            [
                f"run {result.run_id[:8]} posted to {receiver.url}"
                + (f"; first: {first.get('symbol')} {first.get('rule')}" if first else "")
            ],
        )

    def analyst(self, _: Progress) -> StepResult:
        from quant_pipelines.storage.anomaly_workflow import transition

        anomaly = self.db.anomalies.find_one(
            {"status": "open", "detector": {"$regex": "^validation"}}
        )
        if anomaly is None:
            return StepResult("no open alert to act on", outcome="skipped")
        transition(self.db, anomaly["_id"], "ack", note="looking at the feed", actor="demo-analyst")
        transition(
            self.db, anomaly["_id"], "resolve", note="vendor resent the bar", actor="demo-analyst"
        )
        good = self.runs("ingest_equity_bars_job", partition_key=self.bad_day)
        gate = {c.check_name: c.passed for c in good.get_asset_check_evaluations()}
        state = "passes" if gate.get("bars_have_valid_ohlc") else "still fails"
        return StepResult(
            f"alert resolved; re-ingested batch: OHLC gate {state}",
            [f"alert {anomaly['_id']} acknowledged and resolved; {self.bad_day} re-ingested"],
        )

    def quality_models(self, _: Progress) -> StepResult:
        result = self.runs("quality_models_job")
        prophet = meta(result, "prophet_models")
        thresholds = meta(result, "anomaly_thresholds")
        return StepResult(
            f"Prophet models for {prophet.get('symbols_fitted')} symbols",
            [f"models {prophet.get('version')}; thresholds {thresholds.get('version')}"],
        )

    def optimize(self, progress: Progress) -> StepResult:
        from quant_pipelines.backtest import get_strategy, list_strategies

        families: dict[str, str] = {}
        for name in list_strategies():
            families.setdefault(get_strategy(name).family, name)
        lines, best = [], float("-inf")
        config = {"n_trials": self.trials, "seed": 7, "lookback_days": 730}
        for family, strategy in families.items():
            progress.start(f"{family} ({strategy})", len(families))
            result = self.runs(
                "optimize_strategy_job",
                partition_key=dg.MultiPartitionKey({"strategy": strategy, "asset_class": "equity"}),
                run_config={"ops": {"optimization_study": {"config": config}}},
            )
            m = meta(result, "optimization_study")
            best = max(best, float(m.get("best_validation_value", 0) or 0))
            lines.append(
                f"{family:14s} {strategy:20s} best on validation "
                f"{m.get('best_validation_value', 0):+.3f} vs baseline "
                f"{m.get('baseline_value', 0):+.3f}, DSR {m.get('best_deflated_sharpe', 0):.2f}, "
                f"PBO {m.get('pbo', 1):.2f}, {m.get('trials_per_hour', 0):,.0f} trials/h"
            )
            progress.advance(f"{family} study done")
        return StepResult(f"{len(families)} studies, best validation value {best:+.3f}", lines)

    def leaderboard(self, _: Progress) -> StepResult:
        result = self.runs("optimization_leaderboard_job")
        m = meta(result, "optimization_leaderboard")
        return StepResult(
            f"{m.get('promoted', 0)} of {m.get('studies', 0)} studies promoted",
            [
                f"{m.get('rows', 0)} rows ranked by {m.get('rank_by', 'validation')}; best "
                "promoted holdout Sharpe: "
                f"{m.get('best_promoted_holdout_sharpe', 'none promoted')} (docs/overfitting.md)"
            ],
        )

    def rl(self, _: Progress) -> StepResult:
        config = {
            "algo": "ppo",
            "total_timesteps": self.rl_timesteps,
            "seed": 0,
            "holdout_days": 120,
        }
        result = self.runs(
            "rl_training_job",
            partition_key="SPY",
            run_config={
                "ops": {"rl_policy": {"config": config}, "rl_policy_replay": {"config": config}}
            },
        )
        policy, replay = meta(result, "rl_policy"), meta(result, "rl_policy_replay")
        return StepResult(
            f"held-out Sharpe {replay.get('sharpe', 0):.3f}",
            [
                f"policy {policy.get('policy_id')} (sha256 {str(policy.get('sha256'))[:12]}…); "
                f"max drawdown {replay.get('max_drawdown', 0):.3f} "
                f"(limit {replay.get('drawdown_limit', 0):.2f}, "
                f"compliant={replay.get('drawdown_compliant')}), episode length "
                f"{replay.get('episode_length_mean', 0):.0f}"
                f"±{replay.get('episode_length_std', 0):.0f}"
            ],
        )

    def dashboard(self, _: Progress) -> StepResult:
        m = meta(self.runs("anomaly_dashboard_job"), "anomaly_dashboard")
        return StepResult(
            f"{m.get('anomalies_per_batch', 0):.2f} anomalies per batch",
            [f"open {m.get('open', 0)}, false-positive rate {m.get('false_positive_rate', 0):.3f}"],
        )

    def report(self, _: Progress) -> StepResult:
        from quant_pipelines.services.kpis import LABELS
        from quant_pipelines.storage.kpis import section7_metrics

        m = meta(self.runs.materialize("kpi_report"), "kpi_report")
        recorded = len([k for k in m if k not in {"report", "periods_recorded"}])
        lines = [
            f"{LABELS[name]:52s} {'n/a' if value is None else f'{value:,.4g}'}"
            for name, value in section7_metrics(self.db).items()
        ]
        return StepResult(f"{recorded} KPIs recorded", lines)
