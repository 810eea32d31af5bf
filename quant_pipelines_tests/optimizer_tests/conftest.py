"""Small deterministic bars for the optimizer tests (about 500 daily bars)."""

from __future__ import annotations

import optuna
import pandas as pd
import pytest

from quant_pipelines.marketdata import SyntheticSource

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="session")
def bars() -> pd.DataFrame:
    """About 500 daily SPY bars."""
    return SyntheticSource(0).bars("SPY", "2016-01-01", "2017-12-31")


@pytest.fixture(scope="session")
def crypto_bars() -> dict[str, pd.DataFrame]:
    """Two crypto symbols over one year."""
    src = SyntheticSource(0)
    return {s: src.bars(s, "2017-01-01", "2017-12-31") for s in ("BTCUSD", "ETHUSD")}


class ListRecorder:
    """An in-memory StudyRecorder."""

    def __init__(self) -> None:
        self.studies: dict[str, dict] = {}
        self.trials: dict[tuple[str, int], dict] = {}
        self.progress: list[dict] = []

    def upsert_study(self, study_name, fields):
        self.studies.setdefault(study_name, {}).update(fields)

    def update_progress(self, study_name, progress, *, best=None, status=None):
        self.progress.append(dict(progress))
        self.upsert_study(study_name, {"progress": progress, "best": best, "status": status})

    def upsert_trial(self, study_name, number, fields):
        self.trials[(study_name, number)] = dict(fields)

    def upsert_trials(self, study_name, docs):
        for d in docs:
            self.trials[(study_name, d["number"])] = dict(d)
        return len(docs)


@pytest.fixture
def recorder() -> ListRecorder:
    """A fresh in-memory recorder."""
    return ListRecorder()
