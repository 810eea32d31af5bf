"""``quant-pipelines`` console script: mongo, demo, bench and the operational commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from quant_pipelines.settings import load_settings


def cmd_mongo(args: argparse.Namespace) -> int:
    """``mongo start|stop|status|rotate-credentials``: manage the embedded MongoDB server."""
    from quant_pipelines.cli._mongo import run_mongo

    return run_mongo(args)


def _database():
    """The project database from the settings, after a ping (fails fast, names the host).

    Raises ``MongoUnavailableError`` (one line, no password) when unreachable, when the
    credentials are refused, or when the URI or the credentials file is unusable.
    """
    from quant_pipelines.cli._mongo import database

    return database()


def _fmt_time(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else str(value or "-")


def cmd_alerts(args: argparse.Namespace) -> int:
    """``alerts list|ack|resolve|false-positive``: the analysts' workflow."""
    from quant_pipelines.storage import MongoUnavailableError
    from quant_pipelines.storage.anomaly_workflow import (
        AnomalyNotFoundError,
        InvalidTransitionError,
        list_alerts,
        list_anomalies,
        transition,
    )

    try:
        db = _database()
    except MongoUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.action == "list":
        if args.anomalies:
            rows = list_anomalies(db, status=args.status, severity=args.severity, limit=args.limit)
            print(f"{'id':24s}  {'symbol':8s} {'ts':16s} {'detector':12s} {'severity':8s} status")
            for r in rows:
                print(
                    f"{r['_id']!s:24s}  {r.get('symbol', ''):8s} {_fmt_time(r.get('ts')):16s} "
                    f"{r.get('detector', ''):12s} {r.get('severity', ''):8s} "
                    f"{r.get('status', 'open')}"
                )
            return 0
        rows = list_alerts(
            db, delivery_status=args.delivery, severity=args.severity, limit=args.limit
        )
        print(
            f"{'anomaly id':24s}  {'channel':8s} {'delivery':8s} {'tries':>5s}  "
            f"{'symbol':8s} {'ts':16s} {'rule':20s} {'severity':8s} status"
        )
        for r in rows:
            print(
                f"{r.get('anomaly_id')!s:24s}  {r.get('channel', ''):8s} "
                f"{r.get('delivery_status', ''):8s} {r.get('attempts', 0):5d}  "
                f"{r.get('symbol', ''):8s} {_fmt_time(r.get('ts')):16s} "
                f"{r.get('rule') or r.get('detector') or '':20s} {r.get('severity', ''):8s} "
                f"{r.get('anomaly_status') or '-'}"
            )
        return 0
    action = {"ack": "ack", "resolve": "resolve", "false-positive": "false_positive"}[args.action]
    try:
        doc = transition(db, args.id, action, note=args.note, actor=args.actor)
    except AnomalyNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except InvalidTransitionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    print(f"anomaly {args.id}: {doc.get('status')}")
    return 0


def cmd_quality(args: argparse.Namespace) -> int:
    """``quality evaluate``: synthetic bars with injected anomalies, or real files (--source)."""
    from quant_pipelines.quality import run_evaluation

    symbols = args.symbols.split(",") if args.symbols else None
    if args.source:
        return _quality_evaluate_files(args, symbols)
    run = run_evaluation(
        symbols,
        seed=args.seed,
        start=args.start or "2021-01-01",
        end=args.end or "2021-12-31",
        with_prophet=not args.no_prophet,
    )
    print(run.report.to_markdown())
    goals = run.report.goal_results()
    print(goals.to_string(index=False))
    return 0 if run.report.meets_goals() else 4


def _quality_evaluate_files(args: argparse.Namespace, symbols: list[str] | None) -> int:
    """``quality evaluate --source DIR``: production replay on real bars, clean and corrupted."""
    import json
    from pathlib import Path

    from quant_pipelines.marketdata import FileSourceError
    from quant_pipelines.quality._eval_files import file_symbols, read_file_bars
    from quant_pipelines.quality.harness import run_real_evaluation

    try:
        universe = file_symbols(args.source, symbols, calendar=args.calendar)
        bars = read_file_bars(args.source, universe, start=args.start, end=args.end)
    except (FileSourceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run = run_real_evaluation(
        bars,
        calendars={sym.name: sym.calendar for sym in universe},
        seed=args.seed,
        rate=args.rate,
        batch=args.batch,
        with_prophet=not args.no_prophet,
        workers=args.workers,
    )
    print(run.report.to_markdown())
    if args.json:
        Path(args.json).write_text(json.dumps(run.report.to_dict(), indent=1))
    return 0 if run.report.meets_goals() else 4


def cmd_api(args: argparse.Namespace) -> int:
    """``api``: serve the HTTP API (loopback by default; see ``cli/_apikeys.py``)."""
    from quant_pipelines.api import serve
    from quant_pipelines.cli._apikeys import prepare_api

    code = prepare_api(
        args.host, public_ok=args.i_know_this_is_public, dagster_home=load_settings().dagster_home
    )
    if code:
        return code
    serve(
        host=args.host,
        port=args.port,
        read_timeout_s=args.read_timeout,
        limit_concurrency=args.limit_concurrency or None,
    )
    return 0


def cmd_optuna_dashboard(args: argparse.Namespace) -> int:
    """``optuna-dashboard``: read-only, token-protected optuna-dashboard (loopback by default)."""
    from quant_pipelines.cli._dashboard import run

    return run(args, _database)


def cmd_demo(args: argparse.Namespace) -> int:
    """``demo``: start MongoDB if needed, run the workflow as real Dagster runs, summarise."""
    from quant_pipelines.cli.demo import run_demo

    return run_demo(sessions=args.sessions, trials=args.trials, rl_timesteps=args.rl_timesteps)


def cmd_bench(args: argparse.Namespace) -> int:
    """``bench``: run every benchmark and write docs/benchmarks.md."""
    from quant_pipelines.bench.runner import run_benchmarks

    return run_benchmarks(quick=args.quick, output=args.output)


def cmd_regimes(args: argparse.Namespace) -> int:
    """``regimes evaluate``: causal regime labels against market history (docs/signals.md)."""
    from quant_pipelines.marketdata import FileSourceError
    from quant_pipelines.signals.evaluation import evaluate_regimes, load_series

    symbols = args.symbols.split(",") if args.symbols else None
    try:
        bars, truths = load_series(args.source, symbols=symbols, start=args.start, end=args.end)
    except (FileSourceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = evaluate_regimes(bars, lag=args.lag, truths=truths)
    print(report.to_text())
    return 0 if report.meets_goals() else 4


def _add_regimes_parser(sub: argparse._SubParsersAction) -> None:
    regimes = sub.add_parser("regimes", help="regime-label tools")
    regimes.add_argument("action", choices=["evaluate"])
    regimes.add_argument("--source", default=None, help="directory of CSV/Parquet bars")
    regimes.add_argument("--symbols", default="", help="comma-separated (default: all)")
    regimes.add_argument("--start", default=None, help="default: whole file / 2000-01-03")
    regimes.add_argument("--end", default=None, help="default: whole file / 2020-12-31")
    regimes.add_argument("--lag", type=int, default=20, help="lag allowance (sessions)")
    regimes.set_defaults(func=cmd_regimes)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the console script."""
    parser = argparse.ArgumentParser(prog="quant-pipelines", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    mongo = sub.add_parser("mongo", help="manage the embedded MongoDB-wire server")
    mongo.add_argument(
        "action",
        choices=["start", "stop", "status", "rotate-credentials"],
        help="rotate-credentials: new random passwords for the embedded server's users",
    )
    mongo.set_defaults(func=cmd_mongo)

    demo = sub.add_parser("demo", help="run the workflow end to end on the embedded default")
    demo.add_argument("--sessions", type=int, default=360, help="trading days to ingest")
    demo.add_argument("--trials", type=int, default=30, help="trials per study")
    demo.add_argument("--rl-timesteps", type=int, default=4_000)
    demo.set_defaults(func=cmd_demo)

    alerts = sub.add_parser("alerts", help="list alerts and act on anomalies")
    alerts.add_argument("action", choices=["list", "ack", "resolve", "false-positive"])
    alerts.add_argument("id", nargs="?", help="anomaly id (for ack, resolve, false-positive)")
    alerts.add_argument("--note", default=None)
    alerts.add_argument("--actor", default=None)
    alerts.add_argument("--anomalies", action="store_true", help="list anomalies, not alerts")
    alerts.add_argument("--status", default=None, help="anomaly status filter")
    alerts.add_argument("--delivery", default=None, help="pending, sending, sent or failed")
    alerts.add_argument("--severity", default=None)
    alerts.add_argument("--limit", type=int, default=50)
    alerts.set_defaults(func=cmd_alerts)

    quality = sub.add_parser("quality", help="data-quality sentinel tools")
    quality.add_argument("action", choices=["evaluate"])
    quality.add_argument("--symbols", default="", help="comma-separated (default: universe)")
    quality.add_argument("--seed", type=int, default=0)
    quality.add_argument("--start", default=None, help="default: 2021-01-01, or file start")
    quality.add_argument("--end", default=None, help="default: 2021-12-31, or file end")
    quality.add_argument("--no-prophet", action="store_true", help="Isolation Forest and rules")
    quality.add_argument("--source", default=None, help="directory of real CSV/Parquet bars")
    quality.add_argument("--calendar", default=None, help="--source: calendar (default XNYS)")
    quality.add_argument("--rate", type=float, default=0.03, help="--source: corruptions/bar")
    quality.add_argument("--batch", type=int, default=1, help="--source: bars per scoring call")
    quality.add_argument("--workers", type=int, default=1, help="--source: replay processes")
    quality.add_argument("--json", default=None, help="--source: write the report as JSON")
    quality.set_defaults(func=cmd_quality)

    settings = load_settings()
    api = sub.add_parser("api", help="serve the HTTP API")
    api.add_argument("--host", default=settings.api_host)
    api.add_argument("--port", type=int, default=settings.api_port)
    api.add_argument(
        "--i-know-this-is-public",
        action="store_true",
        help="allow a non-loopback --host (API keys must exist too)",
    )
    api.add_argument(
        "--read-timeout",
        type=float,
        default=15.0,
        help="seconds a client has to send its request headers, then its body (else 408)",
    )
    api.add_argument(
        "--limit-concurrency",
        type=int,
        default=100,
        help="open connections + running requests beyond which requests get 503 (0: no bound)",
    )
    api.set_defaults(func=cmd_api)
    from quant_pipelines.cli._apikeys import add_api_keys_parser

    add_api_keys_parser(sub)

    dash = sub.add_parser("optuna-dashboard", help="optuna-dashboard over the MongoDB studies")
    from quant_pipelines.cli._dashboard import add_arguments as add_dashboard_arguments

    add_dashboard_arguments(dash)
    dash.set_defaults(func=cmd_optuna_dashboard)

    bench = sub.add_parser("bench", help="run the benchmarks and write docs/benchmarks.md")
    bench.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    bench.add_argument("--output", default="docs/benchmarks.md")
    bench.set_defaults(func=cmd_bench)
    _add_regimes_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``quant-pipelines``."""
    from quant_pipelines.owner_files import InsecureFileError
    from quant_pipelines.settings import InvalidMongoURIError

    try:  # settings are read while building the parser: their errors are one line too
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "action", None) in {"ack", "resolve", "false-positive"} and not args.id:
            parser.error(f"alerts {args.action} needs an anomaly id")
        return int(args.func(args) or 0)
    except (InsecureFileError, InvalidMongoURIError) as exc:  # credentials file, MONGODB_URI
        print(f"error: {exc}", file=sys.stderr)
        return 2
