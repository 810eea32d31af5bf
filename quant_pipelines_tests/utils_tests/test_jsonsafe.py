"""The one JSON/BSON sanitizer: plain types, and a strict encoder accepts what it returns."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest
from bson import ObjectId

from quant_pipelines._utils.jsonsafe import json_safe


def test_numpy_pandas_and_bson_values_become_plain_json() -> None:
    oid = ObjectId()
    value = {
        "n": np.int64(3),
        "x": np.float32(0.5),
        "flag": np.bool_(True),
        "arr": np.array([1.0, 2.0]),
        "ts": pd.Timestamp("2024-03-01 07:00", tz="America/New_York"),
        "naive": dt.datetime(2024, 3, 1, 12),
        "nat": pd.NaT,
        "tuple": (1, "a"),
        "set": {2},
        "id": oid,
        7: "int key",
    }
    got = json_safe(value)
    assert got == {
        "n": 3,
        "x": 0.5,
        "flag": True,
        "arr": [1.0, 2.0],
        "ts": "2024-03-01T12:00:00+00:00",
        "naive": "2024-03-01T12:00:00+00:00",
        "nat": None,
        "tuple": [1, "a"],
        "set": [2],
        "id": str(oid),
        "7": "int key",
    }
    assert type(got["n"]) is int and type(got["flag"]) is bool
    json.dumps(got, allow_nan=False)


@pytest.mark.parametrize(
    ("nonfinite", "want"),
    [("null", [None, None, None]), ("text", ["nan", "inf", "-inf"])],
)
def test_non_finite_floats(nonfinite: str, want: list) -> None:
    values = [math.nan, np.float64(math.inf), -math.inf]
    assert json_safe(values, nonfinite=nonfinite) == want


def test_non_finite_floats_can_be_kept() -> None:
    got = json_safe({"a": [math.nan]}, nonfinite="keep")
    assert math.isnan(got["a"][0])


def test_invalid_utf8_is_escaped_and_bytes_decoded_or_base64() -> None:
    assert json_safe("a\ud800") == "a\\ud800"
    assert json_safe({"k\udfff": 1}) == {"k\\udfff": 1}
    assert json_safe(b"\xffok") == "\\xffok"
    assert json_safe(b"\xffok", binary="base64") == "/29r"
    json.dumps(json_safe(["a\ud800", b"\xff"]), allow_nan=False).encode("utf-8")


def test_bson_mode_keeps_datetimes_as_utc_datetimes() -> None:
    got = json_safe(
        {"ts": pd.Timestamp("2024-03-01 12:00"), "v": np.float64("nan")}, datetimes="utc"
    )
    assert got == {"ts": dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC), "v": None}
    assert type(got["ts"]) is dt.datetime
