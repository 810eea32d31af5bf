"""Values made safe for a strict JSON encoder or for BSON: the one sanitizer every layer uses."""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd

from quant_pipelines._utils.time import utc

__all__ = ["Binary", "Datetimes", "NonFinite", "json_safe"]

NonFinite = Literal["null", "text", "keep"]
Binary = Literal["text", "base64"]
Datetimes = Literal["iso", "utc"]


def json_safe(
    value: Any,
    *,
    nonfinite: NonFinite = "null",
    binary: Binary = "text",
    datetimes: Datetimes = "iso",
) -> Any:
    """``value`` as plain JSON types, recursively.

    * numpy scalars become Python scalars, numpy arrays lists;
    * non-finite floats become None (``nonfinite="null"``), their text ``"nan"``/``"inf"``
      (``"text"``, for answers that echo input), or stay as they are (``"keep"``);
    * datetimes and pandas Timestamps become UTC ISO strings (``datetimes="iso"``) or
      tz-aware UTC ``datetime`` objects (``"utc"``, for BSON documents); naive = UTC; NaT None;
    * strings that are not valid UTF-8 (lone surrogates) are escaped; bytes are decoded as
      UTF-8 with escapes (``binary="text"``) or base64-encoded (``"base64"``);
    * mappings become dicts with string keys; lists, tuples and sets become lists;
    * anything else (ObjectId, Decimal128, a callable ...) becomes ``str(value)``.

    Args:
        value: Any value.
        nonfinite: What NaN and infinities become.
        binary: What bytes become.
        datetimes: What datetimes become.

    Returns:
        A value made of None, bool, int, float, str, list and dict (and UTC datetimes with
        ``datetimes="utc"``).
    """
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) or nonfinite == "keep":
            return value
        return str(value) if nonfinite == "text" else None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, bytes | bytearray):
        if binary == "base64":
            return base64.b64encode(value).decode()
        return bytes(value).decode("utf-8", "backslashreplace")
    if value is pd.NaT:
        return None
    if isinstance(value, dt.datetime):
        return utc(value) if datetimes == "utc" else utc(value).isoformat()
    options = {"nonfinite": nonfinite, "binary": binary, "datetimes": datetimes}
    if isinstance(value, Mapping):
        return {json_safe(str(k)): json_safe(v, **options) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v, **options) for v in value]
    return json_safe(str(value))
