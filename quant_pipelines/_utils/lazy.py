"""Package names imported on first use (PEP 562), for packages whose submodules are heavy."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, namespace: dict[str, Any], where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of a package exporting ``where``.

    Args:
        package: The package's ``__name__``.
        namespace: The package's ``globals()``; a name is stored there once imported.
        where: Exported name -> the module defining it (``.sub`` relative to ``package``, or
            absolute).
    """

    def get(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name], package), name)
        namespace[name] = value
        return value

    def names() -> list[str]:
        return sorted(namespace.get("__all__", where))

    return get, names
