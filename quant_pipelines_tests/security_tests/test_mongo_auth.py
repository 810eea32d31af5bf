"""The embedded MongoDB runs with ``--auth``: provisioned users, least privilege, owner-only file.

Everything runs against real ``secantusd-py`` processes on loopback: the session server of
the fixtures (provisioned like production) and private ones for the provisioning paths.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from urllib.parse import quote_plus

import psutil
import pymongo
import pytest
from pymongo.errors import OperationFailure

from quant_pipelines.cli import main
from quant_pipelines.owner_files import InsecureFileError, write_owner_only
from quant_pipelines.settings import load_settings
from quant_pipelines.storage import EmbeddedMongo, EmbeddedMongoError, make_client, ping
from quant_pipelines.storage.client import MongoAuthenticationError
from quant_pipelines.storage.embedded import find_executable, free_port, port_is_open

UNAUTHORIZED = 13
AUTHENTICATION_FAILED = 18


def _refused(action, code: int = UNAUTHORIZED) -> None:
    with pytest.raises(OperationFailure) as info:
        action()
    assert info.value.code == code


def test_session_server_runs_with_auth(mongo_server: EmbeddedMongo) -> None:
    assert "--auth" in psutil.Process(mongo_server.status().pid).cmdline()


def test_unauthenticated_client_is_refused(mongo_server: EmbeddedMongo, mongo_client) -> None:
    mongo_client.qp_victim.things.insert_one({"k": 1})
    anonymous = pymongo.MongoClient(mongo_server.public_uri, serverSelectionTimeoutMS=5_000)
    try:
        _refused(anonymous.list_database_names)
        _refused(lambda: anonymous.qp_victim.things.insert_one({"k": 2}))
        _refused(lambda: anonymous.qp_victim.things.find_one())
        _refused(lambda: anonymous.drop_database("qp_victim"))
        _refused(lambda: anonymous.admin.command("createUser", "intruder", pwd="x", roles=[]))
    finally:
        anonymous.close()
    assert mongo_client.qp_victim.things.count_documents({}) == 1, "nothing was written"
    mongo_client.drop_database("qp_victim")


def test_app_user_is_confined_to_the_project_database(
    mongo_server: EmbeddedMongo, mongo_client
) -> None:
    credentials = mongo_server.credentials()
    assert credentials is not None and credentials.app_db == "quant_pipelines"
    mongo_client.qp_other.things.insert_one({"k": 1})
    app = pymongo.MongoClient(mongo_server.app_uri, serverSelectionTimeoutMS=5_000)
    try:
        app.quant_pipelines.qp_auth_probe.insert_one({"k": 1})  # its own database: allowed
        assert app.quant_pipelines.qp_auth_probe.count_documents({}) == 1
        _refused(lambda: app.qp_other.things.insert_one({"k": 2}))
        _refused(lambda: app.qp_other.things.find_one())
        _refused(lambda: app.drop_database("qp_other"))
        _refused(app.list_database_names)
        _refused(lambda: app.admin.command("createUser", "mine", pwd="x", roles=["root"]))
        _refused(
            lambda: app.admin.command(
                "grantRolesToUser", credentials.app_user, roles=[{"role": "root", "db": "admin"}]
            )
        )
        _refused(lambda: app.admin.command({"configureFailPoint": "failCommand", "mode": "off"}))
    finally:
        app.close()
        mongo_client.quant_pipelines.drop_collection("qp_auth_probe")
    assert mongo_client.qp_other.things.count_documents({}) == 1
    mongo_client.drop_database("qp_other")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh DAGSTER_HOME, the embedded server on a free port, no MONGODB_URI."""
    monkeypatch.delenv("MONGODB_URI", raising=False)
    monkeypatch.delenv("MONGODB_DB", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("QP_MONGO_PORT", str(free_port()))
    yield tmp_path
    EmbeddedMongo(tmp_path / "mongo", port=int(os.environ["QP_MONGO_PORT"])).stop()


@pytest.mark.slow
def test_mongo_start_provisions_owner_only_credentials_reused_by_later_starts(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = int(os.environ["QP_MONGO_PORT"])
    before = load_settings()
    assert "@" not in before.mongodb_uri, "no credentials before the first start"

    assert main(["mongo", "start"]) == 0
    out = capsys.readouterr().out
    path = home / "mongo" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert str(path) in out
    doc = json.loads(path.read_text())
    admin_pw, app_pw = doc["admin"]["password"], doc["app"]["password"]
    assert len(admin_pw) >= 40 and len(app_pw) >= 40 and admin_pw != app_pw
    assert doc["app"]["db"] == "quant_pipelines"
    assert admin_pw not in out and app_pw not in out

    settings = load_settings()  # MONGODB_URI unset: the app user from the file
    assert settings.mongodb_uri == (
        f"mongodb://{doc['app']['user']}:{quote_plus(app_pw)}@127.0.0.1:{port}/"
        "?directConnection=true&authSource=admin"
    )
    assert app_pw not in repr(settings)
    client = make_client(settings.mongodb_uri)
    client[settings.mongodb_db].things.insert_one({"k": 1})
    client.close()

    first = path.read_bytes()
    assert main(["mongo", "stop"]) == 0
    assert main(["mongo", "start"]) == 0
    assert path.read_bytes() == first, "a second start reuses the credentials"
    client = make_client(load_settings().mongodb_uri)
    assert client.quant_pipelines.things.count_documents({"k": 1}) == 1
    client.close()


@pytest.mark.slow
def test_group_readable_credentials_are_refused(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = int(os.environ["QP_MONGO_PORT"])
    assert main(["mongo", "start"]) == 0
    assert main(["mongo", "stop"]) == 0
    path = home / "mongo" / "credentials.json"
    path.chmod(0o640)
    capsys.readouterr()
    with pytest.raises(InsecureFileError, match="0640"):
        load_settings()
    assert main(["mongo", "start"]) != 0
    err = capsys.readouterr().err
    assert "0640" in err and "Traceback" not in err
    assert not port_is_open("127.0.0.1", port), "the server must not start"


@pytest.mark.slow
def test_rotation_changes_both_passwords(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mongo", "start"]) == 0
    old_uri = load_settings().mongodb_uri
    old = json.loads((home / "mongo" / "credentials.json").read_text())

    assert main(["mongo", "rotate-credentials"]) == 0
    new = json.loads((home / "mongo" / "credentials.json").read_text())
    assert stat.S_IMODE((home / "mongo" / "credentials.json").stat().st_mode) == 0o600
    assert not (home / "mongo" / "credentials.json.rotating").exists()
    assert new["app"]["password"] != old["app"]["password"]
    assert new["admin"]["password"] != old["admin"]["password"]
    stale = make_client(old_uri, server_selection_timeout_ms=3_000)
    with pytest.raises(MongoAuthenticationError):
        ping(stale, old_uri)
    stale.close()
    fresh = make_client(load_settings().mongodb_uri)
    fresh.quant_pipelines.things.insert_one({"k": 1})
    fresh.close()


@pytest.mark.slow
def test_unauthenticated_data_dir_of_an_older_version_is_provisioned(tmp_path: Path) -> None:
    """An older version ran without --auth and is still running: start() secures it."""
    server = EmbeddedMongo(tmp_path / "mongo", port=free_port())
    server.data_dir.mkdir(parents=True)
    with open(tmp_path / "old.log", "wb") as log:
        old = subprocess.Popen(
            [
                *(find_executable(), "--host", "127.0.0.1", "--port", str(server.port)),
                *("--storage-path", str(server.data_dir), "--log-level", "WARNING"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server.pidfile.write_text(str(old.pid))
    try:
        server._wait_ready(old.pid, server.host, server.port, 30, proc=old)
        legacy = pymongo.MongoClient(server.public_uri)
        legacy.quant_pipelines.bars.insert_one({"symbol": "OLD"})
        legacy.close()

        status = server.start()
        assert status.running and status.pid != old.pid
        assert old.wait(timeout=30) is not None, "the unauthenticated server was stopped"
        assert "--auth" in psutil.Process(status.pid).cmdline()
        anonymous = pymongo.MongoClient(server.public_uri, serverSelectionTimeoutMS=5_000)
        _refused(lambda: anonymous.quant_pipelines.bars.find_one())
        anonymous.close()
        app = pymongo.MongoClient(server.app_uri)
        assert app.quant_pipelines.bars.find_one({"symbol": "OLD"}) is not None, "data kept"
        app.close()
    finally:
        server.stop()
        if old.poll() is None:
            old.kill()
            old.wait()


@pytest.mark.slow
def test_users_without_credentials_file_are_not_reprovisioned(tmp_path: Path) -> None:
    """Losing the file does not open a window: the data folder's users are kept, start refuses."""
    server = EmbeddedMongo(tmp_path / "mongo", port=free_port())
    server.start()
    server.stop()
    server.credentials_file.rename(tmp_path / "saved.json")
    with pytest.raises(EmbeddedMongoError, match="already has MongoDB users") as info:
        server.start()
    assert str(server.credentials_file) in str(info.value)
    assert not server.status().running
    assert not port_is_open(server.host, server.port)

    # A credentials file of another data folder is refused too, and the server stopped.
    other = EmbeddedMongo(tmp_path / "other", port=free_port())
    other.start()
    other.stop()
    other.credentials_file.rename(server.credentials_file)
    with pytest.raises(EmbeddedMongoError, match="authentication failed"):
        server.start()
    assert not server.status().running

    (tmp_path / "saved.json").rename(server.credentials_file)
    assert server.start().running  # the right file opens it again
    server.stop()


def test_cli_names_host_and_cause_of_refused_credentials(
    mongo_server: EmbeddedMongo, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    uri = (
        f"mongodb://qp_app:WrongPassw0rd@127.0.0.1:{mongo_server.port}/"
        "?directConnection=true&authSource=admin"
    )
    monkeypatch.setenv("MONGODB_URI", uri)
    monkeypatch.setenv("MONGODB_DB", "qp_wrong_password")
    assert main(["alerts", "list"]) != 0
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert lines == [
        f"error: MongoDB at 127.0.0.1:{mongo_server.port} refused the credentials "
        "(authentication failed)"
    ]
    assert "WrongPassw0rd" not in captured.out + captured.err


def test_cli_names_missing_rights_without_traceback(
    mongo_server: EmbeddedMongo, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """No credentials at all: ``ping`` passes, the first real command is refused (code 13)."""
    monkeypatch.setenv("MONGODB_URI", mongo_server.public_uri)
    monkeypatch.setenv("MONGODB_DB", "qp_no_rights")
    assert main(["alerts", "list"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not authorized" in err[0]
    assert f"127.0.0.1:{mongo_server.port}" in err[0]


@pytest.mark.slow
def test_an_interrupted_rotation_is_finished_by_the_next_start(tmp_path: Path) -> None:
    """Crash after the new passwords were saved, before ``updateUser``: start() completes it."""
    server = EmbeddedMongo(tmp_path / "mongo", port=free_port())
    server.start()
    server.stop()
    doc = json.loads(server.credentials_file.read_text())
    doc["app"]["password"], doc["admin"]["password"] = "new-app-Pw-1", "new-admin-Pw-1"
    write_owner_only(server.pending_credentials_file, json.dumps(doc))
    server.start()
    try:
        assert not server.pending_credentials_file.exists()
        assert json.loads(server.credentials_file.read_text()) == doc
        assert stat.S_IMODE(server.credentials_file.stat().st_mode) == 0o600
        client = make_client(server.app_uri)
        client.quant_pipelines.things.insert_one({"k": 1})  # the new password works
        client.close()
    finally:
        server.stop()
