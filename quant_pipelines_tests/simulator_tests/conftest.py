"""Tiny deterministic bar fixtures for the simulator tests."""

from __future__ import annotations

import pandas as pd
import pytest

from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.simulator._synthetic import random_walk_bars


@pytest.fixture(scope="session")
def bars() -> pd.DataFrame:
    """400 daily AAPL bars from the project's seeded synthetic source."""
    return SyntheticSource(seed=0).bars("AAPL", "2021-01-01", "2023-01-01").iloc[:400]


@pytest.fixture(scope="session")
def crash_bars() -> pd.DataFrame:
    """300 bars of a steadily falling market (a long position breaches any drawdown limit)."""
    return random_walk_bars(300, seed=3, drift=-0.01, volatility=0.005)


@pytest.fixture(scope="session")
def thin_bars(bars: pd.DataFrame) -> pd.DataFrame:
    """The AAPL bars with a thin volume (orders hit the participation cap and move the price),
    and no volume at all on bars 200..229 (a zero trailing ADV: orders wait)."""
    volume = bars["volume"].to_numpy() * 1e-5
    volume[200:230] = 0.0
    return bars.assign(volume=volume)
