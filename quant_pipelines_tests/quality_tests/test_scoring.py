"""The ``score_bars`` contract."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.quality import SCORE_COLUMNS, SEVERITIES, SymbolModels, score_bars


@pytest.fixture(scope="module")
def scored(aapl: pd.DataFrame, aapl_models: SymbolModels) -> pd.DataFrame:
    return score_bars(aapl.iloc[250:], history=aapl.iloc[:250], models=aapl_models)


def test_contract_columns_and_types(scored: pd.DataFrame, aapl: pd.DataFrame) -> None:
    assert list(scored.columns) == list(SCORE_COLUMNS)
    assert scored.index.equals(aapl.index[250:])
    assert scored["iforest"].between(0, 1).all()
    assert (scored["prophet"] >= 0).all()
    assert set(scored["severity"]) <= set(SEVERITIES)
    assert all(isinstance(r, list) for r in scored["rules"])
    assert not scored["market_event"].any()
    assert not scored["warmup"].any()  # history covers the trailing windows


def test_clean_bars_are_mostly_info(scored: pd.DataFrame) -> None:
    assert (scored["severity"] == "info").mean() > 0.85
    # one genuine jump day (a -7.5 sigma move on 5-sigma volume) may reach critical
    assert (scored["severity"] == "critical").sum() <= 1
    assert (scored["rules"].map(len) == 0).all()


def test_impossible_values_are_critical(aapl: pd.DataFrame, aapl_models: SymbolModels) -> None:
    batch = aapl.iloc[250:260].copy()
    batch.iloc[2, 3] = -1.0  # negative close
    batch.iloc[4, 1] = batch.iloc[4, 2] * 0.5  # high below low
    batch = pd.concat([batch, batch.iloc[[6]]])  # a duplicate row at the end
    out = score_bars(batch, history=aapl.iloc[:250], models=aapl_models)
    assert out.index.equals(batch.index)  # same rows, same order, duplicates included
    assert out["severity"].iloc[[2, 4, 6, 10]].eq("critical").all()
    assert "non_positive_price" in out["rules"].iloc[2]
    assert out["rules"].iloc[4] == ["inconsistent_ohlc"]
    assert out["kind"].iloc[10] == "duplicate_bar"


def test_price_spike_is_at_least_a_warning(aapl: pd.DataFrame, aapl_models: SymbolModels) -> None:
    batch = aapl.iloc[250:255].copy()
    batch.iloc[2, 3] *= 1.25
    batch.iloc[2, 1] = max(batch.iloc[2, 1], batch.iloc[2, 3])
    out = score_bars(batch, history=aapl.iloc[:250], models=aapl_models)
    assert out["severity"].iloc[2] in ("warning", "critical")
    assert out["kind"].iloc[2] == "price_spike"
    assert "iforest" in out["flags"].iloc[2]


def test_volume_bursts_and_drops_are_told_apart(
    aapl: pd.DataFrame, aapl_models: SymbolModels
) -> None:
    batch = aapl.iloc[250:255].copy()
    batch.iloc[1, 4] /= 30
    batch.iloc[3, 4] *= 30
    out = score_bars(batch, history=aapl.iloc[:250], models=aapl_models)
    assert out["volume_z"].iloc[1] < -5 < 5 < out["volume_z"].iloc[3]
    assert out["kind"].iloc[[1, 3]].tolist() == ["volume_drop", "volume_burst"]
    assert (out["severity"].iloc[[1, 3]] != "info").all()


def test_unsorted_input_keeps_its_order(aapl: pd.DataFrame, aapl_models: SymbolModels) -> None:
    batch = aapl.iloc[250:260]
    shuffled = batch.iloc[[3, 0, 9, 5, 1, 2, 8, 7, 6, 4]]
    a = score_bars(batch, history=aapl.iloc[:250], models=aapl_models)
    b = score_bars(shuffled, history=aapl.iloc[:250], models=aapl_models)
    assert b.index.equals(shuffled.index)
    pd.testing.assert_frame_equal(b.sort_index(), a)


@pytest.mark.slow
def test_fits_from_history_or_from_the_bars_themselves(aapl: pd.DataFrame) -> None:
    a = score_bars(aapl.iloc[150:155], history=aapl.iloc[:150], seed=4)
    b = score_bars(aapl.iloc[150:155], history=aapl.iloc[:150], seed=4)
    pd.testing.assert_frame_equal(a, b)  # same inputs and seed: identical
    assert not a["warmup"].any() and (a["prophet"] > 0).any()
    alone = score_bars(aapl.iloc[:120], seed=0)  # each week fitted on the bars before it
    assert alone.index.equals(aapl.index[:120])
    warm = alone["warmup"].to_numpy()
    first = int(np.argmin(warm))
    assert warm[:first].all() and not warm[first:].any()
    assert 45 <= first <= 60  # the forest needs 30 featured bars, the features 21 bars
    assert alone["warmup_reason"].iloc[0].startswith("warm-up: the trailing statistics")
    assert "Isolation Forest" in alone["warmup_reason"].iloc[first - 1]
    assert (alone["warmup_reason"].iloc[first:] == "").all()


def test_too_little_history_is_scored_by_the_rules_only(aapl: pd.DataFrame) -> None:
    bars = aapl.iloc[:25].copy()
    bars.iloc[22, 3] = -1.0
    out = score_bars(bars, calendar="XNYS")
    assert out["warmup"].all()
    assert (out["statistical_level"] == 0).all() and (out["iforest"] == 0).all()
    assert out["severity"].iloc[22] == "critical" and out["kind"].iloc[22] == "non_positive_price"
    assert (out["severity"].drop(index=out.index[22]) == "info").all()
    assert out["warmup_reason"].iloc[24].startswith("no models for the period from")


@pytest.mark.slow
def test_package_stays_pure() -> None:
    code = (
        "import sys, quant_pipelines.quality as q; "
        "bad = [m for m in ('dagster', 'pymongo', 'fastapi', 'httpx', 'quant_pipelines.storage',"
        " 'quant_pipelines.alerts', 'quant_pipelines.defs') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_iforest_only_models(aapl: pd.DataFrame) -> None:
    from quant_pipelines.quality import fit_models

    models = fit_models(aapl.iloc[:200], with_prophet=False)
    out = score_bars(aapl.iloc[200:210], history=aapl.iloc[:200], models=models)
    assert (out["prophet"] == 0).all()
    assert np.isfinite(out["iforest"]).all()
