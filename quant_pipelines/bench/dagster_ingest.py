"""Ingest-and-check of 100 partitions in one Dagster run, against Dagster's floor and the service.

Three paths over the same 100 crypto sessions, each on a fresh database of a private embedded
server, with a SQLite Dagster instance (what ``dagster_home`` uses):

* **product**: ``market_bars/crypto`` materialized over the 100-partition range in one run (its
  backfill policy is a single run), with its four checks;
* **floor**: a no-op asset with the same partitions, check specs and backfill policy,
  materialized the same way: what Dagster alone costs for that run;
* **service**: :func:`~quant_pipelines.services.market_data.ingest_partition` alone.

The time spent in ``DagsterInstance.handle_new_event`` (the event log) is measured during the
product run.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
from dagster._core.instance import DagsterInstance

from quant_pipelines.bench._report import Figure
from quant_pipelines.defs.market_data.assets import build_market_bars_asset
from quant_pipelines.defs.market_data.checks import check_specs
from quant_pipelines.defs.partitions import partition_keys_between, trading_day_partitions
from quant_pipelines.defs.resources import MarketDataSource, MongoResource, UniverseResource
from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.services.market_data import ingest_partition
from quant_pipelines.storage import EmbeddedMongo, make_client
from quant_pipelines.storage.embedded import free_port
from quant_pipelines.storage.repositories import Repositories

ASSET_CLASS = "crypto"
FIRST = "2024-01-01"
#: The product's run over the floor's, at most (goal 1.3x; as a Figure ratio: floor/product).
GOAL = 1 / 1.3


def _noop_asset() -> dg.AssetsDefinition:
    key = dg.AssetKey(["noop_bars", ASSET_CLASS])

    @dg.asset(
        key=key,
        partitions_def=trading_day_partitions(ASSET_CLASS),
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=check_specs(key),
    )
    def _noop(context) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """Does nothing: Dagster's cost for the same run shape."""
        yield dg.MaterializeResult()
        for spec in check_specs(key):
            yield dg.AssetCheckResult(check_name=spec.name, passed=True)

    return _noop


class _EventLogClock:
    """Accumulates the seconds spent in ``DagsterInstance.handle_new_event``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.events = 0
        self._original: Callable | None = None

    def __enter__(self) -> _EventLogClock:
        original = self._original = DagsterInstance.handle_new_event

        def timed(instance, *args, **kwargs):
            start = time.perf_counter()
            try:
                return original(instance, *args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.events += 1

        DagsterInstance.handle_new_event = timed
        return self

    def __exit__(self, *exc: object) -> None:
        DagsterInstance.handle_new_event = self._original


def _materialize(asset, keys: list[str], resources: dict, instance: DagsterInstance) -> float:
    start = time.perf_counter()
    result = dg.materialize(
        [asset],
        resources=resources,
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1],
        },
        raise_on_error=False,
    )
    elapsed = time.perf_counter() - start
    if not result.success:
        raise RuntimeError(f"benchmark run of {asset.key.to_user_string()} failed")
    return elapsed


def _measure(uri: str, keys: list[str], repeat: int) -> dict[str, float]:
    product = build_market_bars_asset(ASSET_CLASS)
    noop = _noop_asset()
    universe = UniverseResource()
    source = MarketDataSource(kind="synthetic", seed=7)
    best = {"product": float("inf"), "floor": float("inf"), "service": float("inf")}
    event_log = {"seconds": 0.0, "events": 0, "run": 0.0}
    with tempfile.TemporaryDirectory() as home, dg.instance_for_test(temp_dir=home) as instance:
        for i in range(repeat + 1):  # the first round warms imports and caches up
            mongo = MongoResource(uri=uri, database=f"bench_product_{i}")
            resources = {"mongo": mongo, "market_data": source, "universe": universe}
            runs = {
                "floor": lambda: _materialize(noop, keys, {}, instance),
                "product": lambda r=resources: _materialize(product, keys, r, instance),
            }
            order = ["product", "floor"] if i % 2 else ["floor", "product"]  # neither goes first
            took, clocks = {}, {}
            for name in order:
                with _EventLogClock() as clocks[name]:
                    took[name] = runs[name]()
            floor_s, product_s, clock = took["floor"], took["product"], clocks["product"]
            client = make_client(uri)
            repos = Repositories.over(client[f"bench_service_{i}"])
            start = time.perf_counter()
            symbols = universe.load()
            ingest_partition(
                repos,
                SyntheticSource(seed=7, universe=symbols),
                symbols,
                ASSET_CLASS,
                keys,
                asset=f"market_bars/{ASSET_CLASS}",
                source_label=source.label,
            )
            service_s = time.perf_counter() - start
            client.close()
            if i == 0:
                continue
            best["floor"] = min(best["floor"], floor_s)
            best["service"] = min(best["service"], service_s)
            if product_s < best["product"]:
                best["product"] = product_s
                event_log = {"seconds": clock.seconds, "events": clock.events, "run": product_s}
    return best | {f"event_log_{k}": v for k, v in event_log.items()}


def run(*, quick: bool = False) -> list[Figure]:
    """Times the three paths over 100 crypto sessions on a private embedded server."""
    n = 100
    keys = partition_keys_between(ASSET_CLASS, FIRST, "2099-12-31")[:n]
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = EmbeddedMongo(Path(tmp) / "mongo", port=free_port())
        server.start()
        try:
            t = _measure(server.uri, keys, repeat=1 if quick else 3)
        finally:
            server.stop()
    share = t["event_log_seconds"] / t["event_log_run"]
    what = f"ingest + 4 checks, {n} {ASSET_CLASS} partitions, one Dagster run"
    return [
        Figure(
            "dagster",
            what,
            t["product"],
            "s",
            "no-op asset, same partitions and checks, one run (Dagster's floor)",
            t["floor"],
            goal=GOAL,
            higher_is_better=False,
        ),
        Figure(
            "dagster",
            what,
            t["product"],
            "s",
            "ingest_partition alone (the service, no Dagster)",
            t["service"],
            higher_is_better=False,
        ),
        Figure(
            "dagster",
            f"time in the event log during that run ({int(t['event_log_events'])} events)",
            t["event_log_seconds"],
            "s",
            f"the whole run (share {share:.0%})",
            t["event_log_run"],
        ),
    ]


if __name__ == "__main__":
    from quant_pipelines.bench._report import render_markdown

    print(render_markdown(run(quick=True)))
