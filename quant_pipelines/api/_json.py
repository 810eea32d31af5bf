"""Conversion of MongoDB documents to plain JSON values, and the strict parse of request bodies."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from quant_pipelines._utils.jsonsafe import json_safe as _json_safe


def to_json(value: Any) -> Any:
    """``value`` with BSON and Python types made JSON-safe.

    ObjectId becomes its hex string, datetimes ISO-8601 (UTC), NaN and infinities null,
    bytes base64, tuples and sets lists; mapping keys become strings
    (:func:`quant_pipelines._utils.jsonsafe.json_safe`).
    """
    return _json_safe(value, binary="base64")


def document(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A MongoDB document as JSON, with ``_id`` exposed as ``id``."""
    out = to_json({k: v for k, v in doc.items() if k != "_id"})
    if "_id" in doc:
        out = {"id": to_json(doc["_id"]), **out}
    return out


#: Deepest nesting of arrays and objects a request body may have (the body itself is level 1).
MAX_JSON_DEPTH = 32
#: Integers a body may carry: MongoDB's signed 64-bit range.
MIN_INT, MAX_INT = -(2**63), 2**63 - 1
#: At most this many offending values are listed in one error answer.
MAX_REPORTED = 20
_MAX_INT_CHARS = len(str(MIN_INT))
_MAX_ECHO_CHARS = 40


class BodyError(ValueError):
    """A request body that is not acceptable JSON, with FastAPI-style field errors.

    Attributes:
        errors: ``{"type", "loc", "msg", "input"?, "ctx"?}`` dicts; ``loc`` starts with ``"body"``
            and is the JSON path of the offending value (object keys and array indices).
    """

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(e["msg"] for e in errors))
        self.errors = errors


class _Rejected(str):
    """A number the strict parser refuses, kept as its literal text until its path is known."""

    kind: str


def _rejected(literal: str, kind: str) -> _Rejected:
    out = _Rejected(literal[:_MAX_ECHO_CHARS] + ("..." if len(literal) > _MAX_ECHO_CHARS else ""))
    out.kind = kind
    return out


def _parse_constant(literal: str) -> _Rejected:
    return _rejected(literal, "non_finite_number")


def _parse_float(literal: str) -> float | _Rejected:
    value = float(literal)
    return value if math.isfinite(value) else _rejected(literal, "number_out_of_range")


def _parse_int(literal: str) -> int | _Rejected:
    if len(literal) > _MAX_INT_CHARS:  # never convert: int() of a huge literal is slow or raises
        return _rejected(literal, "number_out_of_range")
    value = int(literal)
    return value if MIN_INT <= value <= MAX_INT else _rejected(literal, "number_out_of_range")


def json_path(loc: tuple[str | int, ...]) -> str:
    """``("body", "walk_forward", 0)`` as ``body.walk_forward[0]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _issue(kind: str, loc: tuple[str | int, ...], msg: str, value: Any = None) -> dict[str, Any]:
    loc = tuple(json_safe(part) for part in loc)  # a key may hold a lone surrogate
    error: dict[str, Any] = {"type": kind, "loc": list(loc), "msg": f"{json_path(loc)}: {msg}"}
    if value is not None:
        error["input"] = value
    return error


def _check_value(value: Any, loc: tuple[str | int, ...]) -> dict[str, Any] | None:
    if isinstance(value, _Rejected):
        if value.kind == "non_finite_number":
            msg = f"{value} is not a number JSON allows (NaN and Infinity are refused)"
        else:
            msg = (
                f"{value} is out of range (integers must fit in 64 bits, "
                "numbers must be finite doubles)"
            )
        return _issue(value.kind, loc, msg, str(value))
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return _issue(
                "invalid_unicode", loc, "string contains a lone surrogate escape (\\ud800-\\udfff)"
            )
    return None


def parse_json_body(body: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parses a request body as strict JSON: what every route's body goes through first.

    Stricter than :func:`json.loads`: the body must be UTF-8; ``NaN``, ``Infinity`` and
    ``-Infinity`` are refused, and so are numbers that overflow (``1e400`` would become
    ``inf``) and integers outside MongoDB's signed 64-bit range; arrays and objects may nest
    at most ``max_depth`` levels; strings and keys may not hold lone surrogates (they cannot
    be encoded to UTF-8, so neither stored nor echoed).

    Args:
        body: The raw request body (not empty).
        max_depth: Deepest allowed nesting (default :data:`MAX_JSON_DEPTH`).

    Returns:
        The parsed value.

    Raises:
        BodyError: Naming the problem; for a refused value, its JSON path (``loc``).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = body[exc.start : exc.start + 1].hex()
        msg = f"request body is not valid UTF-8: byte 0x{bad} at offset {exc.start} ({exc.reason})"
        raise BodyError([_issue("invalid_utf8", ("body",), msg)]) from None
    too_deep = _issue(
        "json_too_deep", ("body",), f"JSON nests deeper than {max_depth} levels of arrays/objects"
    )
    try:
        value = json.loads(
            text,
            parse_constant=_parse_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
        )
    except json.JSONDecodeError as exc:
        msg = f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})"
        error = _issue("json_invalid", ("body",), msg)
        error["ctx"] = {"error": exc.msg, "position": exc.pos}
        raise BodyError([error]) from None
    except RecursionError:
        raise BodyError([too_deep]) from None
    errors: list[dict[str, Any]] = []
    stack: list[tuple[Any, tuple[str | int, ...], int]] = [(value, ("body",), 1)]
    while stack and len(errors) < MAX_REPORTED:
        node, loc, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > max_depth:
                raise BodyError([too_deep])
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in items:
                if isinstance(key, str) and (issue := _check_value(key, (*loc, key))) is not None:
                    errors.append(issue)
                stack.append((child, (*loc, key), depth + 1))
        elif (issue := _check_value(node, loc)) is not None:
            errors.append(issue)
    if errors:
        raise BodyError(sorted(errors, key=lambda e: json_path(tuple(e["loc"]))))
    return value


def json_safe(value: Any) -> Any:
    """``value`` made encodable by a strict JSON encoder (for error answers that echo input).

    :func:`quant_pipelines._utils.jsonsafe.json_safe` with non-finite floats kept as their text
    (``"nan"``, ``"inf"``), so that the answer shows what the client sent.
    """
    return _json_safe(value, nonfinite="text")
