"""Policy integrity: a tampered zip is refused before anything is deserialised."""

from __future__ import annotations

import hashlib
import io
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import stable_baselines3.common.base_class as sb3_base
import stable_baselines3.common.save_util as sb3_save
import torch

from quant_pipelines.rl import (
    ALGOS,
    PolicyIntegrityError,
    RLEngine,
    TrainedPolicy,
    sha256_file,
    verify_and_load,
)


@pytest.fixture
def saved(ppo_policy: TrainedPolicy, tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "policy.zip"
    shutil.copy(ppo_policy.path, path)
    return path, ppo_policy.sha256


def _tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def no_deserialisation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every way SB3 could open or unpickle the file fails the test if reached."""

    def forbidden(*args: Any, **kwargs: Any) -> None:
        pytest.fail("the policy file was opened for deserialisation")

    for cls in ALGOS.values():
        monkeypatch.setattr(cls, "load", forbidden)
    monkeypatch.setattr(sb3_save, "load_from_zip_file", forbidden)
    monkeypatch.setattr(sb3_base, "load_from_zip_file", forbidden)
    monkeypatch.setattr(zipfile, "ZipFile", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)


def test_sha256_file(saved: tuple[Path, str]) -> None:
    path, expected = saved
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest() == expected


def test_tampered_file_is_refused_before_deserialisation(
    saved: tuple[Path, str], no_deserialisation: None
) -> None:
    path, expected = saved
    _tamper(path)
    with pytest.raises(PolicyIntegrityError, match="does not match"):
        verify_and_load(path, expected, "ppo")


@pytest.mark.parametrize("bad", ["", None, "abc", "g" * 64])
def test_missing_or_malformed_hash_is_refused(
    saved: tuple[Path, str], no_deserialisation: None, bad: str | None
) -> None:
    with pytest.raises(PolicyIntegrityError, match="64-hex-digit"):
        verify_and_load(saved[0], bad, "ppo")


def test_verified_bytes_are_what_sb3_loads(
    saved: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, expected = saved
    real_load = ALGOS["ppo"].load
    seen = []

    def spy(source: Any, **kwargs: Any) -> Any:
        seen.append(source)
        return real_load(source, **kwargs)

    monkeypatch.setattr(ALGOS["ppo"], "load", spy)
    model = verify_and_load(path, expected.upper(), "ppo")
    assert isinstance(seen[0], io.BytesIO)  # not the path: no check-then-reopen race
    assert model.num_timesteps == 512


class _MemoryStore:
    """A duck-typed policy store (the GridFS one follows the same protocol)."""

    def __init__(self, root: Path) -> None:
        self.root, self.records = root, {}

    def save_policy(self, path: Path, meta: dict[str, Any]) -> str:
        policy_id = f"p{len(self.records)}"
        target = self.root / f"{policy_id}.zip"
        shutil.copy(path, target)
        self.records[policy_id] = (target, dict(meta))
        return policy_id

    def load_policy(self, policy_id: str) -> tuple[Path, dict[str, Any]]:
        return self.records[policy_id]


def test_store_round_trip_and_tamper_refusal(
    ppo_policy: TrainedPolicy, bars: pd.DataFrame, tmp_path: Path
) -> None:
    store = _MemoryStore(tmp_path)
    engine = RLEngine(store=store, workdir=tmp_path / "runs")
    policy_id = engine.save(ppo_policy)
    assert store.records[policy_id][1]["sha256"] == ppo_policy.sha256
    loaded = engine.load(policy_id)
    assert loaded.policy_id == policy_id and loaded.env_config == ppo_policy.env_config
    a, b = engine.replay(ppo_policy, bars), engine.replay(loaded, bars)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert a.metrics == b.metrics
    _tamper(store.records[policy_id][0])
    with pytest.raises(PolicyIntegrityError):
        engine.load(policy_id)


def test_store_returning_only_a_path_needs_trusted_meta(
    ppo_policy: TrainedPolicy, tmp_path: Path
) -> None:
    class PathOnlyStore(_MemoryStore):
        def load_policy(self, policy_id: str) -> Path:
            return self.records[policy_id][0]

    store = PathOnlyStore(tmp_path)
    engine = RLEngine(store=store, workdir=tmp_path / "runs")
    policy_id = engine.save(ppo_policy)
    with pytest.raises(PolicyIntegrityError, match="no recorded metadata"):
        engine.load(policy_id)
    assert engine.load(policy_id, meta=ppo_policy.meta()).num_timesteps == 512


def test_engine_without_store() -> None:
    engine = RLEngine()
    with pytest.raises(RuntimeError, match="no store"):
        engine.load("p0")
