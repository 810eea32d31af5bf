"""Conversion of MongoDB documents to plain JSON values."""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from bson import ObjectId
from bson.decimal128 import Decimal128


def to_json(value: Any) -> Any:
    """``value`` with BSON and Python types made JSON-safe.

    ObjectId becomes its hex string, datetimes ISO-8601 (UTC), NaN and infinities null,
    bytes base64, tuples and sets lists; mapping keys become strings.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json(v) for v in value]
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, ObjectId | Decimal128):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if hasattr(value, "item"):  # numpy scalars
        return to_json(value.item())
    return str(value)


def document(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A MongoDB document as JSON, with ``_id`` exposed as ``id``."""
    out = to_json({k: v for k, v in doc.items() if k != "_id"})
    if "_id" in doc:
        out = {"id": to_json(doc["_id"]), **out}
    return out
