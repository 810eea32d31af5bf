"""Every resource of the project, bound in one place: :func:`resources`.

Secrets are bound with ``dg.EnvVar`` (the UI shows the variable's name, never its value);
optional channels whose variables are unset are bound empty, so they are disabled rather
than failing the runs that use them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import dagster as dg
from dagster_slack import SlackResource
from pymongo.uri_parser import parse_uri

from quant_pipelines.defs._alert_resources import (
    AlertTransportsResource,
    SlackBotTransport,
    WebhookResource,
)
from quant_pipelines.defs._io_manager import MongoIOManager
from quant_pipelines.defs._mongo import MongoResource
from quant_pipelines.marketdata import FileSource, SyntheticSource, Universe, load_universe
from quant_pipelines.settings import (
    Settings,
    embedded_credentials_path,
    embedded_mongo_uri,
    load_settings,
)


class UniverseResource(dg.ConfigurableResource):
    """The symbol universe: the one place assets, partitions and sensors read it from.

    ``path`` names a universe YAML; empty means the packaged default. It is read on use,
    never at import time.
    """

    path: str = ""

    def load(self) -> Universe:
        """The universe (parsed once per process and file version)."""
        mtime = Path(self.path).stat().st_mtime_ns if self.path else 0
        return _universe(self.path, mtime)


class MarketDataSource(dg.ConfigurableResource):
    """Where bars come from: the seeded synthetic source or CSV/Parquet files per symbol.

    ``universe_path`` is kept for callers that build the source alone; Dagster assets pass the
    ``UniverseResource``'s universe to :meth:`build` instead.
    """

    kind: Literal["synthetic", "files"] = "synthetic"
    seed: int = 7
    path: str = ""
    universe_path: str = ""

    def build(self, universe: Universe | None = None) -> SyntheticSource | FileSource:
        """The domain source object.

        Args:
            universe: The symbols to synthesize (default: this resource's ``universe``).
        """
        if self.kind == "files":
            if not self.path:
                raise ValueError("MarketDataSource(kind='files') needs a path to the bar files")
            return FileSource(self.path)
        return SyntheticSource(seed=self.seed, universe=universe or self.universe)

    @property
    def universe(self) -> Universe:
        """The symbol universe of ``universe_path`` (the packaged default when empty)."""
        return UniverseResource(path=self.universe_path).load()

    @property
    def label(self) -> str:
        """Name recorded in each bar's ``source`` field."""
        return f"synthetic(seed={self.seed})" if self.kind == "synthetic" else f"files:{self.path}"


@lru_cache(maxsize=8)
def _universe(path: str, mtime: int) -> Universe:
    del mtime  # part of the cache key only: an edited file is read again
    return load_universe(path or None)


def mongo_resource(settings: Settings | None = None) -> MongoResource:
    """The MongoDB resource for ``settings``, binding the URI through ``dg.EnvVar`` when set."""
    settings = settings or load_settings()
    uri: str | dg.EnvVar = dg.EnvVar("MONGODB_URI")
    credentials = ""
    if settings.mongodb_is_embedded:
        node = parse_uri(settings.mongodb_uri)["nodelist"][0]
        uri = embedded_mongo_uri(node[1], host=node[0])
        credentials = str(embedded_credentials_path(settings.dagster_home))
    return MongoResource(
        uri=uri,
        credentials_file=credentials,
        database=settings.mongodb_db,
        server_selection_timeout_ms=settings.server_selection_timeout_ms,
        timeout_ms=settings.timeout_ms,
    )


def _secret(name: str, configured: object) -> str | dg.EnvVar:
    """``dg.EnvVar(name)`` when the setting is configured, else empty (channel disabled)."""
    return dg.EnvVar(name) if configured else ""


def alert_transports(settings: Settings | None = None) -> AlertTransportsResource:
    """The alert channels of ``settings``: signed webhook and Slack (bot, else webhook)."""
    settings = settings or load_settings()
    return AlertTransportsResource(
        webhook=WebhookResource(
            url=_secret("ALERT_WEBHOOK_URL", settings.alert_webhook_url),
            secret=_secret("ALERT_WEBHOOK_SECRET", settings.alert_webhook_secret),
        ),
        slack=SlackResource(token=_secret("SLACK_BOT_TOKEN", settings.slack_bot_token)),
        slack_channel=settings.slack_channel,
        slack_webhook_url=_secret("SLACK_WEBHOOK_URL", settings.slack_webhook_url),
    )


def bound_resources(settings: Settings | None = None) -> dict[str, object]:
    """Every resource by key, for ``settings`` (the environment's, by default)."""
    settings = settings or load_settings()
    mongo = mongo_resource(settings)
    transports = alert_transports(settings)
    universe = UniverseResource()
    return {
        "mongo": mongo,
        "mongo_io": MongoIOManager(mongo=mongo),
        "market_data": MarketDataSource(universe_path=universe.path),
        "universe": universe,
        "alert_transports": transports,
        "slack": transports.slack,
    }


@dg.definitions
def resources() -> dg.Definitions:
    """The project's resources, bound once for every area."""
    return dg.Definitions(resources=bound_resources())


__all__ = [
    "AlertTransportsResource",
    "MarketDataSource",
    "MongoIOManager",
    "MongoResource",
    "SlackBotTransport",
    "UniverseResource",
    "WebhookResource",
    "alert_transports",
    "bound_resources",
    "mongo_resource",
    "resources",
]
