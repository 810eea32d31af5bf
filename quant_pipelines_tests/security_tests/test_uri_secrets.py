"""Passwords in MongoDB URIs never come back: redaction uses pymongo's own parser.

The hand-written parser this replaces let a password with an unescaped ``#`` through to logs
and ``/healthz`` bodies (``urlsplit`` read ``#…`` as a fragment, so no ``@`` was seen).
"""

from __future__ import annotations

import logging
import warnings
from urllib.parse import quote_plus

import pytest
from pymongo.uri_parser import parse_uri

from quant_pipelines.settings import (
    InvalidMongoURIError,
    load_settings,
    parse_mongodb_uri,
    redact_uri,
    uri_hosts,
    validate_mongodb_uri,
)
from quant_pipelines.storage import MongoUnavailableError, make_client
from quant_pipelines.storage.embedded import free_port

with warnings.catch_warnings():  # starlette prefers httpx2 for its TestClient
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SECRET = "Zq9SecretPart"
SPECIALS = ["#", "?", "/", "@", ":", "%z", " ", "[", "#/?@:"]


def _password(special: str) -> str:
    return f"{SECRET[:4]}{special}{SECRET[4:]}"


@pytest.mark.parametrize("special", SPECIALS)
def test_percent_encoded_passwords_are_redacted_and_read_by_pymongo_as_written(
    special: str,
) -> None:
    password = _password(special)
    hosts = "db1.example:27017,db2.example:27018"
    uri = f"mongodb://alice:{quote_plus(password)}@{hosts}/prod?replicaSet=rs0"
    assert parse_uri(uri)["password"] == password  # what the driver will send
    redacted = redact_uri(uri)
    assert redacted == "mongodb://alice:***@db1.example:27017,db2.example:27018/prod?replicaSet=rs0"
    assert uri_hosts(uri) == "db1.example:27017,db2.example:27018"
    settings = load_settings({"MONGODB_URI": uri})
    assert settings.mongodb_uri == uri, "a valid MONGODB_URI is used as is"
    for text in (redacted, repr(settings), settings.redacted_uri):
        assert SECRET not in text and quote_plus(password) not in text


@pytest.mark.parametrize("special", SPECIALS)
def test_unencoded_passwords_are_refused_without_echo(special: str) -> None:
    password = _password(special)
    uri = f"mongodb://alice:{password}@db1.example:27017/prod"
    with pytest.raises(InvalidMongoURIError) as info:
        validate_mongodb_uri(uri)
    message = str(info.value)
    assert "db1.example:27017" in message, "the host is named"
    assert "percent-encode" in message
    assert SECRET[:4] not in message and SECRET[4:] not in message
    with pytest.raises(ValueError) as from_settings:
        load_settings({"MONGODB_URI": uri})
    assert SECRET[4:] not in str(from_settings.value)
    with pytest.raises(MongoUnavailableError) as from_client:
        make_client(uri)
    assert SECRET[4:] not in str(from_client.value)
    assert "db1.example:27017" in str(from_client.value)
    for text in (redact_uri(uri), uri_hosts(uri)):
        assert SECRET[:4] not in text and SECRET[4:] not in text


def test_a_hash_in_a_password_no_longer_leaks() -> None:
    """pymongo itself accepts ``p#ss``; it is refused here because it cannot be told apart."""
    uri = f"mongodb://alice:{SECRET}#frag@db1.example:27017/"
    assert parse_uri(uri)["password"] == f"{SECRET}#frag"
    assert redact_uri(uri) == "<invalid MongoDB URI for db1.example:27017>"
    with pytest.raises(InvalidMongoURIError):
        validate_mongodb_uri(uri)


def test_secret_options_and_srv_uris_are_redacted_without_dns() -> None:
    uri = (
        "mongodb+srv://bob:p%40ss@cluster0.nowhere.invalid/db?srvServiceName=mongo"
        "&authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:tok3n"
        "&tlsCertificateKeyFilePassword=k3yp4ss"
    )
    parsed = parse_mongodb_uri(uri)  # .invalid never resolves: no lookup is attempted
    assert parsed.hosts == "cluster0.nowhere.invalid" and parsed.has_password
    redacted = redact_uri(uri)
    assert redacted.startswith("mongodb+srv://bob:***@cluster0.nowhere.invalid/db?")
    for secret in ("p%40ss", "tok3n", "k3yp4ss"):
        assert secret not in redacted


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mongodb://h:1/", "mongodb://h:1/"),
        ("mongodb://carol@h:1/", "mongodb://carol@h:1/"),
        ("mongodb://carol:@h:1/", "mongodb://carol:***@h:1/"),
        ("postgres://u:pw@h/", "<invalid MongoDB URI>"),
    ],
)
def test_uris_without_a_password_keep_their_shape(uri: str, expected: str) -> None:
    assert redact_uri(uri) == expected


def test_healthz_and_logs_never_show_the_password(caplog: pytest.LogCaptureFixture) -> None:
    from quant_pipelines.api import create_app

    port = free_port()  # nothing listens there
    password = _password("#/?@:")
    uri = f"mongodb://analyst:{quote_plus(password)}@127.0.0.1:{port}/?directConnection=true"
    settings = load_settings(
        {"MONGODB_URI": uri, "MONGODB_SERVER_SELECTION_TIMEOUT_MS": "300", "MONGODB_DB": "qp_x"}
    )
    caplog.set_level(logging.DEBUG)
    app = create_app(settings)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        answer = client.get("/healthz")
    assert answer.status_code == 503
    body = answer.json()
    assert body["mongodb"] == f"127.0.0.1:{port}"
    assert f"127.0.0.1:{port}" in body["detail"] and "unreachable" in body["detail"]
    logged = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    for text in (answer.text, logged):
        assert SECRET[:4] not in text and SECRET[4:] not in text
        assert quote_plus(password) not in text


def test_healthz_names_refused_credentials_without_the_password(
    mongo_server, caplog: pytest.LogCaptureFixture
) -> None:
    from quant_pipelines.api import create_app

    password = _password("@:")
    uri = (
        f"mongodb://qp_app:{quote_plus(password)}@127.0.0.1:{mongo_server.port}/"
        "?directConnection=true&authSource=admin"
    )
    caplog.set_level(logging.DEBUG)
    app = create_app(load_settings({"MONGODB_URI": uri, "MONGODB_DB": "qp_x"}))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["detail"] == (
        f"MongoDB at 127.0.0.1:{mongo_server.port} refused the credentials (authentication failed)"
    )
    logged = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    assert SECRET[4:] not in answer.text + logged
