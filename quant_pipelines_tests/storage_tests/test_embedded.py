from __future__ import annotations

from pathlib import Path

import pytest
from pymongo.errors import OperationFailure

from quant_pipelines.storage import EmbeddedMongo, EmbeddedMongoError, make_client, ping
from quant_pipelines.storage.embedded import free_port

pytestmark = pytest.mark.slow


def test_start_is_idempotent_stop_is_clean_and_data_persists(tmp_path: Path) -> None:
    server = EmbeddedMongo(tmp_path / "mongo", port=free_port())
    assert not server.status().running
    first = server.start()
    assert first.running and first.pid
    again = server.start()
    assert again.pid == first.pid, "a second start must not launch a second server"
    client = make_client(server.uri)
    ping(client, server.uri)
    client.qp.things.insert_one({"k": 1})
    client.close()

    stopped = server.stop()
    assert not stopped.running
    assert not server.pidfile.exists()
    assert server.stop().running is False  # stop twice is fine

    restarted = server.start()
    client = make_client(server.uri)
    assert client.qp.things.count_documents({"k": 1}) == 1, "data must survive a restart"
    client.close()
    server.stop()
    assert "running" in restarted.describe() and str(server.data_dir) in restarted.describe()


def test_stale_pidfile_is_ignored(tmp_path: Path) -> None:
    server = EmbeddedMongo(tmp_path / "mongo", port=free_port())
    server.root.mkdir(parents=True)
    server.pidfile.write_text("999999")
    assert not server.status().running
    server.start()
    try:
        assert server.status().running
    finally:
        server.stop()


def test_port_taken_by_someone_else_is_a_clear_error(tmp_path: Path, mongo_server) -> None:
    squatter = EmbeddedMongo(tmp_path / "other", port=mongo_server.port)
    with pytest.raises(EmbeddedMongoError, match="already in use"):
        squatter.start()


def test_a_changed_project_database_is_granted_to_the_app_user(tmp_path: Path) -> None:
    server = EmbeddedMongo(tmp_path / "mongo", port=free_port())
    server.start()
    server.stop()
    moved = EmbeddedMongo(tmp_path / "mongo", port=server.port, app_db="research")
    moved.start()
    try:
        client = make_client(moved.app_uri)
        client.research.things.insert_one({"k": 1})  # MONGODB_DB=research after provisioning
        client.quant_pipelines.things.insert_one({"k": 1})
        with pytest.raises(OperationFailure):
            client.elsewhere.things.insert_one({"k": 1})
        client.close()
    finally:
        moved.stop()
