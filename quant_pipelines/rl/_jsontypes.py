"""Plain-JSON checks shared by the policy metadata schema, and Box/Discrete spaces as JSON.

Everything here works on values ``json.loads`` produced: dicts, lists, strings, numbers, bools and
None. Nothing is ever unpickled; a value that looks like a serialized object is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

import gymnasium as gym
import numpy as np

_MAX_DEPTH = 8


class PolicyFormatError(ValueError):
    """Stored policy metadata that does not follow the schema (or carries a pickled payload)."""


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, ASCII only, no NaN/Infinity: the text that is signed."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def no_constants(name: str) -> Any:
    """``parse_constant`` hook of ``json.loads``: NaN, Infinity and -Infinity are refused."""
    raise PolicyFormatError(f"policy metadata holds the non-JSON constant {name}")


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` of ``json.loads``: a key given twice is refused."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise PolicyFormatError(f"policy metadata repeats the key {key!r}")
        out[key] = value
    return out


def _pickle_like(text: str) -> bool:
    if len(text) < 8:
        return False
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) >= 2 and raw[0] == 0x80 and 2 <= raw[1] <= 5


def plain_tree(value: Any, where: str, depth: int = 0) -> Any:
    """Check a free-form JSON value: plain types, no serialized or pickled payloads."""
    if depth > _MAX_DEPTH:
        raise PolicyFormatError(f"{where}: nested deeper than {_MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if key == ":serialized:" or key.startswith("py/") or key == "__reduce__":
                raise PolicyFormatError(f"{where}: serialized-object field {key!r} refused")
            plain_tree(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            plain_tree(item, f"{where}[{i}]", depth + 1)
    elif isinstance(value, str):
        if _pickle_like(value):
            raise PolicyFormatError(f"{where}: a base64 pickle payload is refused")
    elif value is not None and not isinstance(value, bool | int | float):
        raise PolicyFormatError(f"{where}: unexpected type {type(value).__name__}")
    return value


def typed(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    """``value`` if it has the JSON type ``kind`` (float accepts int; int never accepts bool)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds:
        kinds = (*kinds, int)
    ok = isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool))
    if not ok:
        names = "/".join(k.__name__ for k in kinds)
        raise PolicyFormatError(f"{where}: expected {names}, got {type(value).__name__}")
    return value


def numbers(value: Any, where: str) -> list[float]:
    typed(value, list, where)
    for i, v in enumerate(value):
        typed(v, float, f"{where}[{i}]")
    return value


# -- spaces ----------------------------------------------------------------------------------


def _bound(x: float) -> float | str:
    return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")


def encode_space(space: gym.Space) -> dict[str, Any]:
    """A Box or Discrete space as plain JSON (exact: float32 values round-trip).

    Raises:
        PolicyFormatError: For any other space.
    """
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.Box) and space.dtype in (np.float32, np.float64):
        return {
            "type": "Box",
            "shape": [int(d) for d in space.shape],
            "dtype": str(space.dtype),
            "low": [_bound(float(x)) for x in space.low.ravel()],
            "high": [_bound(float(x)) for x in space.high.ravel()],
        }
    raise PolicyFormatError(f"cannot store a policy over the space {space!r}")


def decode_space(doc: Any, where: str) -> gym.Space:
    """Rebuild a space from :func:`encode_space` output, checking every field."""
    typed(doc, dict, where)
    kind = doc.get("type")
    if kind == "Discrete" and set(doc) == {"type", "n", "start"}:
        n, start = typed(doc["n"], int, f"{where}.n"), typed(doc["start"], int, f"{where}.start")
        if not 0 < n <= 1_000_000:
            raise PolicyFormatError(f"{where}.n out of range: {n}")
        return gym.spaces.Discrete(n, start=start)
    if kind == "Box" and set(doc) == {"type", "shape", "dtype", "low", "high"}:
        shape = [typed(d, int, f"{where}.shape") for d in typed(doc["shape"], list, where)]
        if not shape or any(d <= 0 for d in shape) or math.prod(shape) > 1_000_000:
            raise PolicyFormatError(f"{where}.shape invalid: {shape}")
        if doc["dtype"] not in ("float32", "float64"):
            raise PolicyFormatError(f"{where}.dtype must be float32 or float64")
        bounds = []
        for name in ("low", "high"):
            raw = typed(doc[name], list, f"{where}.{name}")
            if len(raw) != math.prod(shape):
                raise PolicyFormatError(f"{where}.{name} has {len(raw)} values for {shape}")
            vals = [float(v) if v in ("inf", "-inf") else typed(v, float, where) for v in raw]
            bounds.append(np.asarray(vals, dtype=doc["dtype"]).reshape(shape))
        return gym.spaces.Box(bounds[0], bounds[1], shape=tuple(shape), dtype=doc["dtype"])
    raise PolicyFormatError(f"{where}: expected a Box or Discrete space description")
