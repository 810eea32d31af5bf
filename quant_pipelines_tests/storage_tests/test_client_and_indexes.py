from __future__ import annotations

import time

import pytest
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from quant_pipelines.storage import (
    MongoUnavailableError,
    collections,
    ensure_indexes,
    make_client,
    ping,
)
from quant_pipelines.storage.embedded import free_port


def test_ensure_indexes_creates_every_unique_key_idempotently(mongo_db: Database) -> None:
    again = ensure_indexes(mongo_db)  # the fixture already ran it once
    assert set(again) == set(collections.ALL_COLLECTIONS)
    for name, key in collections.UNIQUE_KEYS.items():
        info = mongo_db[name].index_information()
        uniques = [v for v in info.values() if v.get("unique")]
        assert any([k for k, _ in v["key"]] == list(key) for v in uniques), name


def test_unique_keys_reject_duplicates(mongo_db: Database) -> None:
    mongo_db.studies.insert_one({"study_name": "s1"})
    with pytest.raises(DuplicateKeyError):
        mongo_db.studies.insert_one({"study_name": "s1"})


def test_unreachable_server_fails_fast_naming_host_not_password() -> None:
    port = free_port()
    uri = f"mongodb://alice:s3cr3t@127.0.0.1:{port}/?directConnection=true"
    # timeoutMS far above the selection timeout: the ping must still fail within the latter.
    client = make_client(uri, server_selection_timeout_ms=300, timeout_ms=60_000)
    start = time.monotonic()
    with pytest.raises(MongoUnavailableError) as info:
        ping(client, uri)
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert "s3cr3t" not in message
    client.close()
