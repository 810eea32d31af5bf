"""Runtime settings: the only module in the package that reads environment variables.

Everything else receives a :class:`Settings` (or the values in it) as arguments. Secrets
are held as :class:`Secret` so that ``repr`` and ``str`` never print them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

#: Port of the embedded MongoDB-wire server. Not 27017, so it never collides with a real mongod.
EMBEDDED_MONGO_PORT = 37017
EMBEDDED_MONGO_HOST = "127.0.0.1"
DEFAULT_DB = "quant_pipelines"

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Secret:
    """A string that never shows itself in ``repr``, ``str`` or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        """Returns the secret value; call this only where it is used."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('********')" if self._value else "Secret('')"

    __str__ = __repr__


def embedded_mongo_uri(port: int = EMBEDDED_MONGO_PORT) -> str:
    """URI of the embedded server on loopback (a direct connection to one node)."""
    return f"mongodb://{EMBEDDED_MONGO_HOST}:{port}/?directConnection=true"


_CREDENTIALS = re.compile(r"(mongodb(?:\+srv)?://)([^@/]+)@")


def redact_uri(uri: str) -> str:
    """Returns ``uri`` with any password replaced by ``***``; safe for logs and errors.

    Args:
        uri: A MongoDB connection string, possibly with ``user:password@``.

    Returns:
        The same URI with the password part masked; user name and hosts are kept.
    """
    try:
        parts = urlsplit(uri)
    except ValueError:
        return _CREDENTIALS.sub(r"\1***@", uri)
    if "@" not in parts.netloc:
        return uri
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    netloc = f"{quote(user, safe='%')}:***@{hosts}" if ":" in userinfo else f"{user}@{hosts}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def uri_hosts(uri: str) -> str:
    """The host list of a MongoDB URI, without credentials, for error messages."""
    netloc = urlsplit(uri).netloc
    return netloc.rpartition("@")[2] or uri


@dataclass(frozen=True)
class Settings:
    """All configuration read from the environment.

    Attributes:
        mongodb_uri: Connection string; the embedded server when ``MONGODB_URI`` is unset.
        mongodb_db: Database name (``MONGODB_DB``).
        mongodb_is_embedded: True when no ``MONGODB_URI`` was given.
        dagster_home: Dagster instance folder (``DAGSTER_HOME``), default ``./dagster_home``.
        server_selection_timeout_ms: ``MONGODB_SERVER_SELECTION_TIMEOUT_MS``.
        timeout_ms: Per-operation client timeout, ``MONGODB_TIMEOUT_MS``.
        alert_webhook_url: ``ALERT_WEBHOOK_URL``; empty disables the webhook channel.
        alert_webhook_secret: ``ALERT_WEBHOOK_SECRET`` used for HMAC signatures.
        slack_webhook_url: ``SLACK_WEBHOOK_URL`` (incoming webhook); a secret.
        slack_bot_token: ``SLACK_BOT_TOKEN`` for dagster-slack; a secret.
        slack_channel: ``SLACK_CHANNEL``.
        api_host: ``QP_API_HOST``, default loopback.
        api_port: ``QP_API_PORT``.
        embedded_mongo_port: ``QP_MONGO_PORT``, the embedded server's loopback port.
    """

    mongodb_uri: str
    mongodb_db: str = DEFAULT_DB
    mongodb_is_embedded: bool = True
    dagster_home: Path = field(default_factory=lambda: _PROJECT_ROOT / "dagster_home")
    server_selection_timeout_ms: int = 5_000
    timeout_ms: int = 60_000
    alert_webhook_url: str = ""
    alert_webhook_secret: Secret = field(default_factory=lambda: Secret(""))
    slack_webhook_url: Secret = field(default_factory=lambda: Secret(""))
    slack_bot_token: Secret = field(default_factory=lambda: Secret(""))
    slack_channel: str = "#data-quality"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    embedded_mongo_port: int = EMBEDDED_MONGO_PORT

    @property
    def redacted_uri(self) -> str:
        """The MongoDB URI with its password masked."""
        return redact_uri(self.mongodb_uri)

    def __repr__(self) -> str:
        return (
            f"Settings(mongodb_uri={self.redacted_uri!r}, mongodb_db={self.mongodb_db!r}, "
            f"dagster_home={str(self.dagster_home)!r})"
        )


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from exc


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Reads the settings from ``env`` (default: the process environment).

    Args:
        env: A mapping to read instead of ``os.environ`` (tests pass their own).

    Returns:
        The settings, with defaults for everything unset.
    """
    env = os.environ if env is None else env
    uri = env.get("MONGODB_URI", "").strip()
    home = env.get("DAGSTER_HOME", "").strip()
    port = _int(env, "QP_MONGO_PORT", EMBEDDED_MONGO_PORT)
    return Settings(
        mongodb_uri=uri or embedded_mongo_uri(port),
        embedded_mongo_port=port,
        mongodb_db=env.get("MONGODB_DB", "").strip() or DEFAULT_DB,
        mongodb_is_embedded=not uri,
        dagster_home=Path(home).resolve() if home else _PROJECT_ROOT / "dagster_home",
        server_selection_timeout_ms=_int(env, "MONGODB_SERVER_SELECTION_TIMEOUT_MS", 5_000),
        timeout_ms=_int(env, "MONGODB_TIMEOUT_MS", 60_000),
        alert_webhook_url=env.get("ALERT_WEBHOOK_URL", "").strip(),
        alert_webhook_secret=Secret(env.get("ALERT_WEBHOOK_SECRET", "")),
        slack_webhook_url=Secret(env.get("SLACK_WEBHOOK_URL", "")),
        slack_bot_token=Secret(env.get("SLACK_BOT_TOKEN", "")),
        slack_channel=env.get("SLACK_CHANNEL", "").strip() or "#data-quality",
        api_host=env.get("QP_API_HOST", "").strip() or "127.0.0.1",
        api_port=_int(env, "QP_API_PORT", 8000),
    )
