"""Small deterministic fixtures for the quality tests (seeded synthetic bars, fitted models)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.marketdata import SyntheticSource
from quant_pipelines.quality import SymbolModels, fit_models


def make_bars(n: int = 60, *, seed: int = 0, start: str = "2024-01-01") -> pd.DataFrame:
    """A tiny random-walk bar frame on consecutive days (no calendar needed)."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=n, freq="D", tz="UTC", name="ts")
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    wick = np.abs(rng.normal(0.0, 0.004, (2, n)))
    high = np.maximum(open_, close) * (1 + wick[0])
    low = np.minimum(open_, close) * (1 - wick[1])
    volume = 1e6 * np.exp(rng.normal(0.0, 0.2, n))
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


@pytest.fixture(scope="session")
def source() -> SyntheticSource:
    """The seeded synthetic source of the default universe."""
    return SyntheticSource(seed=0)


@pytest.fixture(scope="session")
def aapl(source: SyntheticSource) -> pd.DataFrame:
    """About 300 clean daily AAPL bars (2022 to early 2023)."""
    return source.bars("AAPL", "2022-01-01", "2023-03-15")


@pytest.fixture(scope="session")
def aapl_models(aapl: pd.DataFrame) -> SymbolModels:
    """Detectors fitted on the first 250 AAPL bars."""
    return fit_models(aapl.iloc[:250], seed=0, calendar="XNYS")
