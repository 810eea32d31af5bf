"""The tradable universe: symbols, their asset class, calendar and synthetic-generation params.

The default universe ships as package data (``universe.yaml`` next to this module)::

    symbols:
      - name: AAPL
        asset_class: equity      # equity | fx | crypto
        start_price: 25.0        # optional: price at the synthetic epoch (2000-01-03)
        annual_vol: 0.30         # optional: annualised volatility of synthetic returns
        avg_volume: 8.0e7        # optional: typical volume per daily bar
        calendar: XNYS           # optional: derived from asset_class when omitted
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import exchange_calendars as xcals
import yaml

from quant_pipelines.marketdata.calendars import ASSET_CLASS_CALENDARS

ASSET_CLASSES: tuple[str, ...] = tuple(ASSET_CLASS_CALENDARS)
"""Known asset classes."""

# start_price, annual_vol, avg_volume when the YAML omits them.
_CLASS_DEFAULTS: dict[str, tuple[float, float, float]] = {
    "equity": (100.0, 0.25, 5.0e6),
    "fx": (1.0, 0.08, 1.0e5),
    "crypto": (1_000.0, 0.70, 2.0e4),
}


@lru_cache(maxsize=1)
def _calendar_names() -> frozenset[str]:
    return frozenset(xcals.get_calendar_names(include_aliases=True))


class UniverseError(ValueError):
    """A universe file or entry is malformed."""


@dataclasses.dataclass(frozen=True)
class Symbol:
    """One instrument of the universe.

    Attributes:
        name: Ticker, e.g. ``"AAPL"`` or ``"EURUSD"``.
        asset_class: One of :data:`ASSET_CLASSES`.
        calendar: ``exchange_calendars`` name; derived from the asset class when empty.
        start_price: Synthetic price at the generation epoch (> 0).
        annual_vol: Annualised volatility of synthetic log returns (> 0).
        avg_volume: Typical synthetic volume per daily bar (> 0).

    The three generation params default (when left NaN) to per-asset-class values.
    """

    name: str
    asset_class: str
    calendar: str = ""
    start_price: float = math.nan
    annual_vol: float = math.nan
    avg_volume: float = math.nan

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise UniverseError(f"symbol name must be a non-empty string, got {self.name!r}")
        if self.asset_class not in ASSET_CLASSES:
            raise UniverseError(
                f"symbol {self.name!r}: unknown asset_class {self.asset_class!r}; "
                f"known: {list(ASSET_CLASSES)}"
            )
        defaults = dict(
            zip(
                ("start_price", "annual_vol", "avg_volume"),
                _CLASS_DEFAULTS[self.asset_class],
                strict=True,
            )
        )
        if not self.calendar:
            object.__setattr__(self, "calendar", ASSET_CLASS_CALENDARS[self.asset_class])
        elif self.calendar not in _calendar_names():
            raise UniverseError(
                f"symbol {self.name!r}: unknown calendar {self.calendar!r} "
                "(use an exchange_calendars name such as 'XNYS' or '24/7')"
            )
        for field, default in defaults.items():
            value = getattr(self, field)
            try:
                value = float(value)
            except (TypeError, ValueError) as exc:
                raise UniverseError(
                    f"symbol {self.name!r}: {field} must be a number, got {value!r}"
                ) from exc
            if math.isnan(value):
                value = default
            if not value > 0 or math.isinf(value):
                raise UniverseError(f"symbol {self.name!r}: {field} must be > 0, got {value!r}")
            object.__setattr__(self, field, value)


class Universe:
    """An ordered, name-unique collection of :class:`Symbol`.

    Args:
        symbols: The symbols, in display order.

    Raises:
        UniverseError: If two symbols share a name.
    """

    def __init__(self, symbols: Iterable[Symbol]) -> None:
        self._symbols = tuple(symbols)
        self._by_name: dict[str, Symbol] = {}
        for sym in self._symbols:
            if sym.name in self._by_name:
                raise UniverseError(f"duplicate symbol name {sym.name!r}")
            self._by_name[sym.name] = sym

    def __iter__(self) -> Iterator[Symbol]:
        return iter(self._symbols)

    def __len__(self) -> int:
        return len(self._symbols)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._lookup(name) is not None

    def __repr__(self) -> str:
        return f"Universe({list(self.names)})"

    @property
    def symbols(self) -> tuple[Symbol, ...]:
        """All symbols, in order."""
        return self._symbols

    @property
    def names(self) -> tuple[str, ...]:
        """All symbol names, in order."""
        return tuple(s.name for s in self._symbols)

    @property
    def asset_classes(self) -> tuple[str, ...]:
        """Asset classes present, in order of first appearance."""
        return tuple(dict.fromkeys(s.asset_class for s in self._symbols))

    def _lookup(self, name: str) -> Symbol | None:
        sym = self._by_name.get(name)
        if sym is None:
            matches = [s for s in self._symbols if s.name.lower() == name.lower()]
            sym = matches[0] if len(matches) == 1 else None
        return sym

    def get(self, name: str) -> Symbol:
        """Look a symbol up by name (exact, else case-insensitive).

        Args:
            name: Symbol name.

        Returns:
            The symbol.

        Raises:
            KeyError: If unknown; the message lists the known names.
        """
        sym = self._lookup(name)
        if sym is None:
            raise KeyError(f"unknown symbol {name!r}; known symbols: {list(self.names)}")
        return sym

    def by_asset_class(self, asset_class: str) -> tuple[Symbol, ...]:
        """Symbols of one asset class.

        Args:
            asset_class: One of :data:`ASSET_CLASSES`.

        Returns:
            The matching symbols, in order (possibly empty).

        Raises:
            ValueError: If the asset class is unknown.
        """
        if asset_class not in ASSET_CLASSES:
            raise ValueError(f"unknown asset class {asset_class!r}; known: {list(ASSET_CLASSES)}")
        return tuple(s for s in self._symbols if s.asset_class == asset_class)


_FIELDS = {f.name for f in dataclasses.fields(Symbol)}


def _parse_entry(entry: Any, position: int, source: str) -> Symbol:
    where = f"{source}: symbols[{position}]"
    if not isinstance(entry, Mapping):
        raise UniverseError(f"{where}: expected a mapping with name and asset_class, got {entry!r}")
    label = f"{where} ({entry.get('name')!r})" if "name" in entry else where
    unknown = sorted(set(map(str, entry)) - _FIELDS)
    if unknown:
        raise UniverseError(f"{label}: unknown field(s) {unknown}; allowed: {sorted(_FIELDS)}")
    missing = [f for f in ("name", "asset_class") if f not in entry]
    if missing:
        raise UniverseError(f"{label}: missing required field(s) {missing}")
    try:
        return Symbol(**{str(k): v for k, v in entry.items()})
    except UniverseError as exc:
        raise UniverseError(f"{label}: {exc}") from exc


def parse_universe(document: Any, *, source: str = "<universe>") -> Universe:
    """Build a universe from a parsed YAML document.

    Args:
        document: A mapping with a ``symbols`` list of entries.
        source: Name used in error messages (usually the file path).

    Returns:
        The universe.

    Raises:
        UniverseError: If the document or an entry is malformed; the message names ``source``
            and the entry.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("symbols"), list):
        raise UniverseError(f"{source}: expected a mapping with a 'symbols' list at the top")
    symbols = [_parse_entry(e, i, source) for i, e in enumerate(document["symbols"])]
    if not symbols:
        raise UniverseError(f"{source}: the 'symbols' list is empty")
    try:
        return Universe(symbols)
    except UniverseError as exc:
        raise UniverseError(f"{source}: {exc}") from exc


def load_universe(path: str | Path | None = None) -> Universe:
    """Load a universe from YAML.

    Args:
        path: YAML file; ``None`` loads the default universe shipped with the package.

    Returns:
        The universe.

    Raises:
        UniverseError: If the file is not valid YAML or an entry is malformed.
        FileNotFoundError: If ``path`` does not exist.
    """
    if path is None:
        ref = resources.files("quant_pipelines.marketdata").joinpath("universe.yaml")
        text, source = ref.read_text(encoding="utf-8"), "quant_pipelines/marketdata/universe.yaml"
    else:
        text, source = Path(path).read_text(encoding="utf-8"), str(path)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UniverseError(f"{source}: invalid YAML: {exc}") from exc
    return parse_universe(document, source=source)
