"""``quant-pipelines`` console script: mongo, demo, bench and the operational commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from quant_pipelines.settings import load_settings


def _embedded_server():
    from quant_pipelines.storage import EmbeddedMongo

    settings = load_settings()
    return EmbeddedMongo(settings.dagster_home / "mongo", port=settings.embedded_mongo_port)


def cmd_mongo(args: argparse.Namespace) -> int:
    """``mongo start|stop|status``: manage the embedded MongoDB-wire server."""
    from quant_pipelines.storage import EmbeddedMongoError

    settings = load_settings()
    server = _embedded_server()
    try:
        if args.action == "start":
            if not settings.mongodb_is_embedded:
                print(
                    f"MONGODB_URI is set ({settings.redacted_uri}); "
                    "not starting the embedded server"
                )
                return 0
            status = server.start()
        elif args.action == "stop":
            status = server.stop()
        else:
            status = server.status()
    except EmbeddedMongoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(status.describe())
    return 0 if (status.running or args.action == "stop") else 3


def cmd_demo(args: argparse.Namespace) -> int:
    """``demo``: start MongoDB if needed, run the workflow as real Dagster runs, summarise."""
    from quant_pipelines.demo import run_demo

    return run_demo(sessions=args.sessions)


def cmd_bench(args: argparse.Namespace) -> int:
    """``bench``: run every benchmark and write docs/benchmarks.md."""
    from quant_pipelines.bench.runner import run_benchmarks

    return run_benchmarks(quick=args.quick, output=args.output)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the console script."""
    parser = argparse.ArgumentParser(prog="quant-pipelines", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    mongo = sub.add_parser("mongo", help="manage the embedded MongoDB-wire server")
    mongo.add_argument("action", choices=["start", "stop", "status"])
    mongo.set_defaults(func=cmd_mongo)

    demo = sub.add_parser("demo", help="run the workflow end to end on the embedded default")
    demo.add_argument("--sessions", type=int, default=504, help="trading days of history to ingest")
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="run the benchmarks and write docs/benchmarks.md")
    bench.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    bench.add_argument("--output", default="docs/benchmarks.md")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``quant-pipelines``."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
