"""Random JSON never makes the API fail (no 5xx), and a refused body never writes anything."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from fastapi.testclient import TestClient
from httpx import Response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo.database import Database

from quant_pipelines_tests.api_tests.conftest import request_count

_FIELDS = (
    "strategy",
    "symbols",
    "start",
    "end",
    "n_trials",
    "objective",
    "sampler",
    "seed",
    "walk_forward",
    "urgent",
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["$ne", "$where", "AAPL", "sma_crossover", "2020-01-01", "tpe", "sharpe"])
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=8) | st.sampled_from(["$gt", "$ne", "n_folds"]), inner, max_size=4
        )
    ),
    max_leaves=12,
)
_FIELD_VALUES = st.dictionaries(st.sampled_from(_FIELDS), _JSON, max_size=len(_FIELDS))
_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _post(client: TestClient, body: Any, headers: dict[str, str] | None = None) -> Response:
    answer = client.post(
        "/backtests/optimize",
        content=json.dumps(body),
        headers={"content-type": "application/json", **(headers or {})},
    )
    assert answer.status_code < 500, answer.text
    return answer


@_SETTINGS
@given(body=_JSON)
def test_random_json_is_refused_cleanly(client: TestClient, mongo_db: Database, body):
    before = request_count(mongo_db)
    assert _post(client, body).status_code == 422
    assert request_count(mongo_db) == before


@_SETTINGS
@given(changes=_FIELD_VALUES, key=st.none() | st.text(max_size=20))
def test_mutated_valid_bodies(client: TestClient, mongo_db: Database, valid_body, changes, key):
    before = request_count(mongo_db)
    headers = {}
    if key is not None:
        try:
            key.encode("ascii")
        except UnicodeEncodeError:
            key = key.encode("unicode_escape").decode("ascii")
        headers["Idempotency-Key"] = key
    answer = _post(client, {**valid_body, **changes}, headers)
    assert answer.status_code in (202, 409, 422)
    created = answer.status_code == 202 and "idempotent-replayed" not in answer.headers
    assert request_count(mongo_db) - before == int(created)


@_SETTINGS
@given(path=st.text(max_size=40), query=st.dictionaries(st.text(max_size=10), st.text(max_size=10)))
def test_random_gets_never_fail(client: TestClient, path, query):
    for base in ("/backtests/optimize/", "/alerts?", "/backtests/leaderboard?"):
        url = base + quote(path, safe="") if base.endswith("/") else base
        answer = client.get(url, params=query)
        assert answer.status_code < 500
