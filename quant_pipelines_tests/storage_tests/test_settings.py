from __future__ import annotations

from pathlib import Path

import pytest

from quant_pipelines.settings import (
    EMBEDDED_MONGO_PORT,
    Secret,
    load_settings,
    redact_uri,
    uri_hosts,
)


def test_defaults_point_at_the_embedded_server() -> None:
    s = load_settings({})
    assert s.mongodb_is_embedded
    assert f"127.0.0.1:{EMBEDDED_MONGO_PORT}" in s.mongodb_uri
    assert EMBEDDED_MONGO_PORT != 27017
    assert s.mongodb_db == "quant_pipelines"
    assert s.dagster_home.name == "dagster_home"
    assert s.api_host == "127.0.0.1"


def test_environment_overrides(tmp_path: Path) -> None:
    s = load_settings(
        {
            "MONGODB_URI": "mongodb://db.example:27017",
            "MONGODB_DB": "research",
            "DAGSTER_HOME": str(tmp_path),
            "MONGODB_TIMEOUT_MS": "1234",
        }
    )
    assert not s.mongodb_is_embedded
    assert s.mongodb_db == "research"
    assert s.dagster_home == tmp_path.resolve()
    assert s.timeout_ms == 1234


def test_bad_integer_is_named() -> None:
    with pytest.raises(ValueError, match="MONGODB_TIMEOUT_MS"):
        load_settings({"MONGODB_TIMEOUT_MS": "soon"})


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "mongodb://alice:s3cr3t@h1:27017,h2:27017/db?x=1",
            "mongodb://alice:***@h1:27017,h2:27017/db?x=1",
        ),
        (
            "mongodb+srv://bob:p%40ss@cluster0.example.net/",
            "mongodb+srv://bob:***@cluster0.example.net/",
        ),
        ("mongodb://h:1/", "mongodb://h:1/"),
        ("mongodb://carol@h:1/", "mongodb://carol@h:1/"),
    ],
)
def test_redact_uri_masks_passwords(uri: str, expected: str) -> None:
    assert redact_uri(uri) == expected
    assert "s3cr3t" not in redact_uri(uri)


def test_hosts_and_settings_repr_never_show_the_password() -> None:
    uri = "mongodb://alice:s3cr3t@h1:27017/db"
    assert uri_hosts(uri) == "h1:27017"
    s = load_settings({"MONGODB_URI": uri, "ALERT_WEBHOOK_SECRET": "hush"})
    assert "s3cr3t" not in repr(s)
    assert "hush" not in repr(s) and "hush" not in str(s.alert_webhook_secret)
    assert s.alert_webhook_secret.get() == "hush"
    assert not Secret("")
