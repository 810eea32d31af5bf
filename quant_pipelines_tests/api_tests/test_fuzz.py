"""Random JSON never makes the API fail (no 5xx), and a refused body never writes anything.

Beyond random but well-formed JSON: NaN, Infinity and out-of-range numbers at random places of
a valid body, invalid UTF-8, deep nesting, truncated JSON, lone surrogates and wrong content
types. Each gets a 4xx whose JSON names the problem (and, for a bad value, its JSON path).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo.database import Database

from quant_pipelines.api._json import MAX_JSON_DEPTH
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


@pytest.mark.slow
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


@pytest.mark.slow
@_SETTINGS
@given(path=st.text(max_size=40), query=st.dictionaries(st.text(max_size=10), st.text(max_size=10)))
def test_random_gets_never_fail(client: TestClient, path, query):
    for base in ("/backtests/optimize/", "/alerts?", "/backtests/leaderboard?"):
        url = base + quote(path, safe="") if base.endswith("/") else base
        answer = client.get(url, params=query)
        assert answer.status_code < 500


# --- Hostile bytes ---------------------------------------------------------------------------

URL = "/backtests/optimize"
_PLACEHOLDER = "__fuzz_placeholder__"
#: JSON paths into the valid body (``valid_body`` in conftest), plus places it has no field.
_PATHS: tuple[tuple[str | int, ...], ...] = (
    *((field,) for field in _FIELDS),
    ("symbols", 0),
    ("symbols", 1),
    ("walk_forward", "n_folds"),
    ("walk_forward", "scheme"),
    ("walk_forward", "train_frac"),
    ("walk_forward", "purge"),
    ("walk_forward", "unknown"),
    ("no_such_field",),
)
_NON_FINITE = st.sampled_from(["NaN", "Infinity", "-Infinity"])
_OVERFLOWING = (
    st.sampled_from(["1e400", "-1e400", "1E309", "2.5e99999", "9223372036854775808"])
    | st.integers(min_value=2**63, max_value=10**400).map(str)
    | st.integers(max_value=-(2**63) - 1, min_value=-(10**400)).map(str)
    | st.builds(lambda m, e: f"{m}e{e}", st.integers(1, 9), st.integers(309, 10**6))
)
_INVALID_UTF8 = st.sampled_from(
    [
        b"\xff",
        b"\xfe",
        b"\xc3\x28",
        b"\xa0\xa1",
        b"\xe2\x28\xa1",
        b"\xf0\x28\x8c\xbc",
        b"\xc0\xaf",
        b"\xed\xa0\x80",
        b"\xf8\x88\x80\x80\x80",
        b"\x80",
    ]
)
_CONTENT_TYPES = st.sampled_from(
    [
        "text/plain",
        "text/html; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/octet-stream",
        "application/jsonx",
        "json",
        "",
    ]
) | st.from_regex(r"\A[a-z]{1,10}/[a-z0-9.+-]{1,15}\Z").filter(lambda t: "json" not in t)


def _placed(body: dict[str, Any], path: tuple[str | int, ...], literal: str) -> bytes:
    """``body`` as JSON text with the raw ``literal`` at ``path``."""
    doc = json.loads(json.dumps(body))
    node: Any = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = _PLACEHOLDER
    return json.dumps(doc).replace(f'"{_PLACEHOLDER}"', literal).encode()


def _post_raw(client: TestClient, content: bytes, content_type: str | None) -> Response:
    headers = {} if content_type is None else {"content-type": content_type}
    answer = client.post(URL, content=content, headers=headers)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    assert answer.headers["content-type"].startswith("application/json")
    return answer


def _error_types(answer: Response) -> list[str]:
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, list) and detail
    assert all(e["msg"] for e in detail)
    return [e["type"] for e in detail]


@_SETTINGS
@given(path=st.sampled_from(_PATHS), literal=_NON_FINITE | _OVERFLOWING)
def test_non_finite_and_overflowing_numbers_are_named(
    client: TestClient, mongo_db: Database, valid_body, path, literal
):
    before = request_count(mongo_db)
    answer = _post_raw(client, _placed(valid_body, path, literal), "application/json")
    assert _error_types(answer) in (["non_finite_number"], ["number_out_of_range"])
    [error] = answer.json()["detail"]
    assert error["loc"] == ["body", *path]
    dotted = "body" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    assert error["msg"].startswith(dotted + ":")
    assert request_count(mongo_db) == before


@_SETTINGS
@given(position=st.floats(0, 1), bad=_INVALID_UTF8)
def test_invalid_utf8_is_named(client: TestClient, mongo_db: Database, valid_body, position, bad):
    before = request_count(mongo_db)
    text = json.dumps(valid_body).encode()
    cut = int(position * len(text))
    answer = _post_raw(client, text[:cut] + bad + text[cut:], "application/json")
    assert _error_types(answer) == ["invalid_utf8"]
    assert "UTF-8" in answer.json()["detail"][0]["msg"]
    assert request_count(mongo_db) == before


@_SETTINGS
@given(
    depth=st.integers(MAX_JSON_DEPTH + 1, 30_000),
    kind=st.sampled_from(["array", "object"]),
    where=st.sampled_from([None, "walk_forward", "symbols", "extra"]),
)
def test_deep_nesting_is_named(
    client: TestClient, mongo_db: Database, valid_body, depth, kind, where
):
    before = request_count(mongo_db)
    opened, closed = ("[", "]") if kind == "array" else ('{"a":', "}")
    inner = opened * depth + "1" + closed * depth
    if where is None:
        content = inner
    else:
        content = json.dumps({**valid_body, where: _PLACEHOLDER}).replace(
            f'"{_PLACEHOLDER}"', inner
        )
    answer = _post_raw(client, content.encode(), "application/json")
    if len(content) > 64 * 1024:
        assert answer.status_code == 413
    else:
        assert _error_types(answer) == ["json_too_deep"]
        assert str(MAX_JSON_DEPTH) in answer.json()["detail"][0]["msg"]
    assert request_count(mongo_db) == before


def test_nesting_up_to_the_limit_is_parsed(client: TestClient, mongo_db: Database, valid_body):
    """The body object is level 1: 31 levels more are parsed (the schema refuses them), 32 not."""

    def refused(depth: int) -> list[str]:
        nested = "[" * depth + '"AAPL"' + "]" * depth
        content = json.dumps({**valid_body, "symbols": _PLACEHOLDER})
        content = content.replace(f'"{_PLACEHOLDER}"', nested)
        return _error_types(_post_raw(client, content.encode(), "application/json"))

    assert "json_too_deep" not in refused(MAX_JSON_DEPTH - 1)
    assert refused(MAX_JSON_DEPTH) == ["json_too_deep"]
    assert request_count(mongo_db) == 0


@_SETTINGS
@given(fraction=st.floats(0, 1, exclude_max=True))
def test_truncated_json_is_named(client: TestClient, mongo_db: Database, valid_body, fraction):
    before = request_count(mongo_db)
    text = json.dumps(valid_body).encode()
    cut = max(1, int(fraction * len(text)))
    answer = _post_raw(client, text[:cut], "application/json")
    assert _error_types(answer) == ["json_invalid"]
    assert "invalid JSON" in answer.json()["detail"][0]["msg"]
    assert request_count(mongo_db) == before


@_SETTINGS
@given(path=st.sampled_from(_PATHS), in_key=st.booleans(), code=st.integers(0xD800, 0xDFFF))
def test_lone_surrogates_are_named(
    client: TestClient, mongo_db: Database, valid_body, path, in_key, code
):
    """``"\\udXXX"`` escapes decode to strings that cannot be stored nor echoed."""
    before = request_count(mongo_db)
    escaped = f'"\\u{code:04x}"'
    literal = "{" + escaped + ": 1}" if in_key else escaped
    answer = _post_raw(client, _placed(valid_body, path, literal), "application/json")
    assert set(_error_types(answer)) == {"invalid_unicode"}
    assert request_count(mongo_db) == before


@_SETTINGS
@given(content_type=_CONTENT_TYPES, body=_JSON)
def test_wrong_content_types_are_named(client: TestClient, mongo_db: Database, content_type, body):
    before = request_count(mongo_db)
    answer = _post_raw(client, json.dumps(body).encode(), content_type)
    assert "application/json" in json.dumps(answer.json()["detail"]).lower()
    assert request_count(mongo_db) == before
