"""Runtime settings: the only module in the package that reads environment variables.

Everything else receives a :class:`Settings` (or the values in it) as arguments. Secrets
are held as :class:`Secret` so that ``repr`` and ``str`` never print them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

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


#: Where the embedded server's users are kept, relative to ``DAGSTER_HOME`` (mode 0600).
EMBEDDED_CREDENTIALS_FILE = Path("mongo") / "credentials.json"
#: Database holding the embedded server's users (every ``authSource``).
EMBEDDED_AUTH_SOURCE = "admin"


def embedded_mongo_uri(
    port: int = EMBEDDED_MONGO_PORT,
    *,
    host: str = EMBEDDED_MONGO_HOST,
    user: str | None = None,
    password: Secret | None = None,
) -> str:
    """URI of the embedded server (a direct connection to one node), with credentials if given.

    Args:
        port: The server's TCP port.
        host: Its address; loopback by default.
        user: A user of the ``admin`` database, or None for a URI without credentials.
        password: That user's password.

    Returns:
        The connection string; user and password are percent-encoded.
    """
    if user is None:
        return f"mongodb://{host}:{port}/?directConnection=true"
    secret = password.get() if password is not None else ""
    userinfo = f"{quote(user, safe='')}:{quote(secret, safe='')}"
    return (
        f"mongodb://{userinfo}@{host}:{port}/"
        f"?directConnection=true&authSource={EMBEDDED_AUTH_SOURCE}"
    )


@dataclass(frozen=True)
class MongoCredentials:
    """The embedded server's two users, as kept in its owner-only credentials file.

    Attributes:
        admin_user: User with role ``root`` (provisioning, rotation, tests).
        admin_password: Its password.
        app_user: User with ``readWrite`` on :attr:`app_db` only; the one the project uses.
        app_password: Its password.
        app_db: The project database the application user may read and write.
    """

    admin_user: str
    admin_password: Secret
    app_user: str
    app_password: Secret
    app_db: str

    def to_json(self) -> str:
        """The file's content (holds the passwords in clear: write it owner-only)."""
        return json.dumps(
            {
                "version": 1,
                "auth_source": EMBEDDED_AUTH_SOURCE,
                "admin": {"user": self.admin_user, "password": self.admin_password.get()},
                "app": {
                    "user": self.app_user,
                    "password": self.app_password.get(),
                    "db": self.app_db,
                },
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str, *, source: str = "credentials file") -> MongoCredentials:
        """Parses :meth:`to_json` output.

        Raises:
            ValueError: The text is not a credentials document (the message holds no secret).
        """
        try:
            doc = json.loads(text)
            return cls(
                admin_user=str(doc["admin"]["user"]),
                admin_password=Secret(str(doc["admin"]["password"])),
                app_user=str(doc["app"]["user"]),
                app_password=Secret(str(doc["app"]["password"])),
                app_db=str(doc["app"]["db"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"{source} is not a valid MongoDB credentials file ({type(exc).__name__})"
            ) from None


def embedded_credentials_path(dagster_home: Path) -> Path:
    """The embedded server's credentials file under ``dagster_home``."""
    return Path(dagster_home) / EMBEDDED_CREDENTIALS_FILE


def read_credentials(path: Path) -> MongoCredentials | None:
    """Reads an embedded server's credentials file, or None when there is none yet.

    Raises:
        quant_pipelines.owner_files.InsecureFileError: The file is readable or writable by
            the group or others, or owned by someone else.
        ValueError: The file is malformed.
    """
    from quant_pipelines.owner_files import read_owner_only

    try:
        text = read_owner_only(path)
    except FileNotFoundError:
        return None
    return MongoCredentials.from_json(text, source=str(path))


_SCHEMES = ("mongodb+srv://", "mongodb://")
#: RFC 3986 userinfo: unreserved, percent-encoded, sub-delims and ":".
_USERINFO = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=%:]*")
_HOSTS = re.compile(r"[A-Za-z0-9\-._:,\[\]]+")
_SRV_ONLY_OPTIONS = frozenset({"srvservicename", "srvmaxhosts"})
#: URI options whose values are secrets too: masked like the password.
_SECRET_OPTIONS = frozenset(
    {"authmechanismproperties", "tlscertificatekeyfilepassword", "sslpemkeypassword"}
)
_ENCODE_HINT = (
    "percent-encode the user name and password (urllib.parse.quote_plus): "
    "any of : / ? # [ ] @ % or spaces in them must be escaped"
)


class InvalidMongoURIError(ValueError):
    """A MongoDB URI that cannot be parsed; the message never holds its credentials."""


@dataclass(frozen=True)
class ParsedMongoURI:
    """A MongoDB URI split by pymongo's parser, without its password.

    Attributes:
        scheme: ``mongodb://`` or ``mongodb+srv://``.
        username: The user, decoded, or None.
        has_password: Whether the URI holds a password.
        hosts: The host list as written (``h1:27017,h2:27017``, or the SRV name).
        database: The database in the path, or None.
        query: The options as written, with secret-bearing values masked.
    """

    scheme: str
    username: str | None
    has_password: bool
    hosts: str
    database: str | None
    query: str

    def redacted(self) -> str:
        """The URI with the password (and secret options) replaced by ``***``."""
        userinfo = ""
        if self.username is not None:
            userinfo = quote(self.username, safe="") + (":***" if self.has_password else "") + "@"
        elif self.has_password:
            userinfo = ":***@"
        path = "/" + (self.database or "")
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}{userinfo}{self.hosts}{path}{query}"


def _safe_hosts(uri: str) -> str | None:
    """The host list of a URI that could not be parsed, when it is isolated safely.

    The hosts follow the last ``@`` (a password ends before an ``@``); the result must look
    like a host list, otherwise None.
    """
    scheme = next((s for s in _SCHEMES if uri.lower().startswith(s)), None)
    if scheme is None:
        return None
    rest = uri[len(scheme) :].rpartition("@")[2]
    hosts = re.split(r"[/?#]", rest, maxsplit=1)[0]
    return hosts if _HOSTS.fullmatch(hosts) else None


def _invalid(uri: str, problem: str) -> InvalidMongoURIError:
    hosts = _safe_hosts(uri)
    where = f"for {hosts}" if hosts else "(host not shown)"
    return InvalidMongoURIError(
        f"MongoDB URI {where} is invalid: {problem}. "
        "The URI is not shown because it may hold a password."
    )


def parse_mongodb_uri(uri: str) -> ParsedMongoURI:
    """Parses a MongoDB URI with pymongo's own parser, without any DNS lookup.

    A user name or password that is not percent-encoded is refused, including characters
    pymongo would let through (``#``, spaces): it is where a password leaks from otherwise.

    Args:
        uri: A ``mongodb://`` or ``mongodb+srv://`` connection string.

    Returns:
        Its parts, without the password.

    Raises:
        InvalidMongoURIError: The URI cannot be parsed; the message names the host when it can
            be isolated safely, never the password (pymongo's own message is not repeated:
            it may quote the password).
    """
    from pymongo.errors import ConfigurationError, InvalidURI
    from pymongo.uri_parser import parse_uri

    scheme = next((s for s in _SCHEMES if uri.startswith(s)), None)
    if scheme is None:
        raise _invalid(uri, "it must start with mongodb:// or mongodb+srv://")
    rest = uri[len(scheme) :]
    host_part, _, path_part = rest.partition("/")
    path, _, query = path_part.partition("?")
    userinfo = ""
    if "@" in host_part:
        userinfo, _, hosts = host_part.rpartition("@")
        if not _USERINFO.fullmatch(userinfo) or userinfo.count(":") > 1:
            raise _invalid(uri, _ENCODE_HINT)
    else:
        hosts = host_part
        if "@" in path or "@" in query.partition("=")[0]:
            raise _invalid(uri, _ENCODE_HINT)  # a "/" or "?" cut the user info short
    if scheme == "mongodb+srv://":
        # Parsed as a plain URI: the SRV lookup is the client's business, not redaction's.
        kept = [o for o in query.split("&") if o.partition("=")[0].lower() not in _SRV_ONLY_OPTIONS]
        rest = host_part + "/" + path + ("?" + "&".join(kept) if kept else "")
    try:
        parsed = parse_uri("mongodb://" + rest, validate=False, warn=False)
    except (InvalidURI, ConfigurationError, ValueError) as exc:
        raise _invalid(uri, f"pymongo refused it ({type(exc).__name__}); {_ENCODE_HINT}") from None
    options = []
    for option in filter(None, re.split(r"[&;]", query)):
        key, eq, _value = option.partition("=")
        options.append(f"{key}=***" if eq and key.lower() in _SECRET_OPTIONS else option)
    return ParsedMongoURI(
        scheme=scheme,
        username=parsed.get("username"),
        has_password=":" in userinfo,
        hosts=hosts,
        database=parsed.get("database"),
        query="&".join(options),
    )


def validate_mongodb_uri(uri: str) -> str:
    """Returns ``uri`` unchanged if pymongo can parse it safely.

    Raises:
        InvalidMongoURIError: See :func:`parse_mongodb_uri`.
    """
    parse_mongodb_uri(uri)
    return uri


def redact_uri(uri: str) -> str:
    """Returns ``uri`` with any password replaced by ``***``; safe for logs and errors.

    Parsed with pymongo's parser (:func:`parse_mongodb_uri`), so the password is what the
    driver would send, wherever it ends. A URI that cannot be parsed is not repeated at all.

    Args:
        uri: A MongoDB connection string, possibly with ``user:password@``.

    Returns:
        The same URI with the password part masked; user name and hosts are kept.
    """
    try:
        return parse_mongodb_uri(uri).redacted()
    except InvalidMongoURIError:
        hosts = _safe_hosts(uri)
        return f"<invalid MongoDB URI for {hosts}>" if hosts else "<invalid MongoDB URI>"


def uri_hosts(uri: str) -> str:
    """The host list of a MongoDB URI, without credentials, for error messages."""
    try:
        return parse_mongodb_uri(uri).hosts
    except InvalidMongoURIError:
        return _safe_hosts(uri) or "<unparseable host>"


@dataclass(frozen=True)
class Settings:
    """All configuration read from the environment.

    Attributes:
        mongodb_uri: ``MONGODB_URI`` as given; when unset, the embedded server's URI with the
            application user of ``$DAGSTER_HOME/mongo/credentials.json`` (no credentials
            before the first ``quant-pipelines mongo start``). Holds a password: log
            :attr:`redacted_uri` instead.
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
        console_url: ``QP_CONSOLE_URL``, where analysts open the web console (alert links
            point at ``<console_url>/console/anomalies/<id>``); default the API's own address.
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
    console_url: str = "http://127.0.0.1:8000"

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


#: Environment variable of the console's public base URL (scheme, host, optional port and path).
CONSOLE_URL_ENV = "QP_CONSOLE_URL"


def _is_plain_http_url(raw: str) -> bool:
    """An http(s) URL with a host, and no credentials, query, fragment or unsafe characters."""
    try:
        parts = urlsplit(raw)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not (parts.query or parts.fragment or "@" in parts.netloc)
        and not any(c in raw for c in ' <>"|\\')
    )


def console_base_url(env: Mapping[str, str] | None = None) -> str:
    """The analyst console's base URL, without a trailing slash.

    ``QP_CONSOLE_URL`` when set (e.g. ``https://quant.example.com``), else the API's own
    address (``http://<QP_API_HOST>:<QP_API_PORT>``). Reads nothing but those variables.

    Args:
        env: A mapping to read instead of ``os.environ`` (tests pass their own).

    Returns:
        The URL; the console's pages live under ``<url>/console/``.

    Raises:
        ValueError: ``QP_CONSOLE_URL`` is not an http(s) URL with a host, or carries a
            query, a fragment or credentials.
    """
    env = os.environ if env is None else env
    raw = env.get(CONSOLE_URL_ENV, "").strip()
    if not raw:
        host = env.get("QP_API_HOST", "").strip() or "127.0.0.1"
        if host in ("0.0.0.0", "::"):  # noqa: S104  (a wildcard bind is no address to browse to)
            host = "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{_int(env, 'QP_API_PORT', 8000)}"
    if not _is_plain_http_url(raw):
        shown = "(not shown: it holds credentials)" if "@" in raw else repr(raw)
        raise ValueError(
            f"{CONSOLE_URL_ENV} must be an http(s) URL with a host and no query, fragment or "
            f"credentials (e.g. https://quant.example.com), not {shown}"
        )
    return raw.rstrip("/")


def embedded_app_uri(dagster_home: Path, port: int) -> str:
    """The application user's URI of the embedded server, from its credentials file.

    Before the first ``quant-pipelines mongo start`` there is no file yet: the URI then has no
    credentials, and the server (always run with ``--auth``) refuses it until provisioned.

    Args:
        dagster_home: The ``DAGSTER_HOME`` holding ``mongo/credentials.json``.
        port: The embedded server's port.

    Raises:
        quant_pipelines.owner_files.InsecureFileError: The file is not owner-only.
        ValueError: The file is malformed.
    """
    credentials = read_credentials(embedded_credentials_path(dagster_home))
    if credentials is None:
        return embedded_mongo_uri(port)
    return embedded_mongo_uri(port, user=credentials.app_user, password=credentials.app_password)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Reads the settings from ``env`` (default: the process environment).

    Args:
        env: A mapping to read instead of ``os.environ`` (tests pass their own).

    Returns:
        The settings, with defaults for everything unset.

    Raises:
        InvalidMongoURIError: ``MONGODB_URI`` cannot be parsed, e.g. its password is not
            percent-encoded (the message names the host, never the password).
        quant_pipelines.owner_files.InsecureFileError: The embedded server's credentials
            file may be read by the group or others.
        ValueError: An integer variable is not an integer, or the credentials file is
            malformed, or ``QP_CONSOLE_URL`` is not an http(s) URL.
    """
    env = os.environ if env is None else env
    uri = env.get("MONGODB_URI", "").strip()
    if uri:
        validate_mongodb_uri(uri)
    home = env.get("DAGSTER_HOME", "").strip()
    dagster_home = Path(home).resolve() if home else _PROJECT_ROOT / "dagster_home"
    port = _int(env, "QP_MONGO_PORT", EMBEDDED_MONGO_PORT)
    return Settings(
        mongodb_uri=uri or embedded_app_uri(dagster_home, port),
        embedded_mongo_port=port,
        mongodb_db=env.get("MONGODB_DB", "").strip() or DEFAULT_DB,
        mongodb_is_embedded=not uri,
        dagster_home=dagster_home,
        server_selection_timeout_ms=_int(env, "MONGODB_SERVER_SELECTION_TIMEOUT_MS", 5_000),
        timeout_ms=_int(env, "MONGODB_TIMEOUT_MS", 60_000),
        alert_webhook_url=env.get("ALERT_WEBHOOK_URL", "").strip(),
        alert_webhook_secret=Secret(env.get("ALERT_WEBHOOK_SECRET", "")),
        slack_webhook_url=Secret(env.get("SLACK_WEBHOOK_URL", "")),
        slack_bot_token=Secret(env.get("SLACK_BOT_TOKEN", "")),
        slack_channel=env.get("SLACK_CHANNEL", "").strip() or "#data-quality",
        api_host=env.get("QP_API_HOST", "").strip() or "127.0.0.1",
        api_port=_int(env, "QP_API_PORT", 8000),
        console_url=console_base_url(env),
    )
