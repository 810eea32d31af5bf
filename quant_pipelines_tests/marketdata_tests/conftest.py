"""Fixtures of the marketdata tests: tiny deterministic bar frames and a shared source."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.marketdata import SyntheticSource, bar_times, load_universe


@pytest.fixture(scope="session")
def source() -> SyntheticSource:
    """The default-universe daily source with seed 0 (its path cache is shared by the tests)."""
    return SyntheticSource(0, universe=load_universe())


@pytest.fixture
def clean_bars() -> pd.DataFrame:
    """Ten clean XNYS daily bars of early January 2024."""
    index = bar_times("XNYS", "2024-01-02", "2024-01-16")[:10]
    close = 100.0 + np.arange(10.0)
    return pd.DataFrame(
        {
            "open": close - 0.5,
            "high": close + 1.0,
            "low": close - 1.0,
            "close": close,
            "volume": np.full(10, 1_000.0),
        },
        index=index,
    )
