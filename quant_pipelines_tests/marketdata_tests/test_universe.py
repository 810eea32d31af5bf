"""The universe: packaged default, custom YAML and malformed files."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from quant_pipelines.marketdata import Symbol, Universe, UniverseError, load_universe


def test_default_universe_has_eight_symbols_across_three_classes() -> None:
    universe = load_universe()
    assert len(universe) >= 8
    assert set(universe.asset_classes) == {"equity", "fx", "crypto"}
    for name in ("AAPL", "MSFT", "SPY", "NVDA", "EURUSD", "USDJPY", "BTCUSD", "ETHUSD"):
        assert name in universe
    assert {s.name for s in universe.by_asset_class("crypto")} >= {"BTCUSD", "ETHUSD"}


@pytest.mark.parametrize(
    ("name", "calendar"), [("AAPL", "XNYS"), ("EURUSD", "24/5"), ("BTCUSD", "24/7")]
)
def test_calendar_is_derived_from_the_asset_class(name: str, calendar: str) -> None:
    assert load_universe().get(name).calendar == calendar


def test_get_is_case_insensitive_and_unknown_names_list_the_known_ones() -> None:
    universe = load_universe()
    assert universe.get("aapl").name == "AAPL"
    with pytest.raises(KeyError, match="AAPL"):
        universe.get("NOPE")


def test_symbol_is_frozen_and_fills_class_defaults() -> None:
    sym = Symbol("X", "crypto")
    assert sym.calendar == "24/7"
    assert sym.start_price > 0 and sym.annual_vol > 0 and sym.avg_volume > 0
    assert not math.isnan(sym.annual_vol)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sym.name = "Y"  # type: ignore[misc]


def test_custom_yaml(tmp_path: Path) -> None:
    path = tmp_path / "u.yaml"
    path.write_text(
        "symbols:\n"
        "  - {name: QQQ, asset_class: equity, annual_vol: 0.2}\n"
        "  - {name: GBPUSD, asset_class: fx, calendar: XLON}\n"
    )
    universe = load_universe(path)
    assert isinstance(universe, Universe)
    assert universe.names == ("QQQ", "GBPUSD")
    assert universe.get("QQQ").annual_vol == 0.2
    assert universe.get("GBPUSD").calendar == "XLON"
    assert universe.asset_classes == ("equity", "fx")
    assert [s.name for s in universe] == ["QQQ", "GBPUSD"]


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("symbols: [", ["invalid YAML"]),
        ("- AAPL\n", ["'symbols' list"]),
        ("symbols:\n  - {name: AAPL, asset_class: bond}\n", ["symbols[0]", "'AAPL'", "bond"]),
        (
            "symbols:\n  - {name: A, asset_class: equity}\n  - {asset_class: fx}\n",
            ["symbols[1]", "name"],
        ),
        ("symbols:\n  - {name: A, asset_class: equity, annual_vol: -1}\n", ["'A'", "annual_vol"]),
        ("symbols:\n  - {name: A, asset_class: equity, annual_vol: abc}\n", ["'A'", "annual_vol"]),
        ("symbols:\n  - {name: A, asset_class: equity, colour: red}\n", ["symbols[0]", "colour"]),
        ("symbols:\n  - {name: A, asset_class: equity, calendar: NOPE}\n", ["'A'", "NOPE"]),
        (
            "symbols:\n  - {name: A, asset_class: fx}\n  - {name: A, asset_class: fx}\n",
            ["duplicate"],
        ),
        ("symbols:\n  - just-a-string\n", ["symbols[0]", "mapping"]),
    ],
    ids=[
        "yaml-syntax",
        "no-symbols",
        "bad-class",
        "no-name",
        "negative-vol",
        "non-numeric",
        "unknown-field",
        "bad-calendar",
        "duplicate",
        "not-a-mapping",
    ],
)
def test_malformed_yaml_names_file_and_entry(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UniverseError) as info:
        load_universe(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_by_asset_class_rejects_unknown_classes() -> None:
    with pytest.raises(ValueError, match="known"):
        load_universe().by_asset_class("bonds")
