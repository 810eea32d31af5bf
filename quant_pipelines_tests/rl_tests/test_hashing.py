"""Policy integrity: a stored policy is signed; a tampered one is refused before any parsing."""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import safetensors.torch
import stable_baselines3.common.save_util as sb3_save
import torch

from quant_pipelines.rl import (
    ALGOS,
    PolicyArtifact,
    PolicyIntegrityError,
    RLEngine,
    TrainedPolicy,
    _spec,
    pack_policy,
    sha256_file,
    verify_and_load,
)
from quant_pipelines.rl.policy import weights_bytes

KEY = b"k" * 32


def _flip(data: bytes) -> bytes:
    out = bytearray(data)
    out[len(out) // 2] ^= 0xFF
    return bytes(out)


@pytest.fixture
def no_deserialisation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every way a policy could be parsed or unpickled fails the test if reached."""

    def forbidden(*args: Any, **kwargs: Any) -> None:
        pytest.fail("the policy was parsed or deserialised")

    for cls in ALGOS.values():
        monkeypatch.setattr(cls, "load", forbidden)
    monkeypatch.setattr(sb3_save, "load_from_zip_file", forbidden)
    monkeypatch.setattr(zipfile, "ZipFile", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(safetensors.torch, "load", forbidden)
    monkeypatch.setattr(_spec, "parse_spec", forbidden)


def test_local_checkpoint_and_weights_hash(ppo_policy: TrainedPolicy) -> None:
    path = Path(ppo_policy.path)
    assert (
        path.suffix == ".zip" and sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    )
    expected = hashlib.sha256(weights_bytes(ppo_policy.model)).hexdigest()
    assert ppo_policy.sha256 == ppo_policy.weights_sha256() == expected


@pytest.fixture
def artifact(ppo_policy: TrainedPolicy) -> PolicyArtifact:
    """The shared policy, signed (before any deserialisation trap is armed)."""
    return pack_policy(ppo_policy, KEY, "p0")


def test_tampered_weights_or_metadata_are_refused_before_parsing(
    artifact: PolicyArtifact, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue("no_deserialisation")
    for bad in (
        dataclasses.replace(artifact, weights=_flip(artifact.weights)),
        dataclasses.replace(artifact, spec=artifact.spec.replace('"seed":5', '"seed":6')),
    ):
        assert bad != artifact
        with pytest.raises(PolicyIntegrityError, match="does not verify"):
            verify_and_load(bad, KEY)
    with pytest.raises(PolicyIntegrityError, match="does not verify"):
        verify_and_load(artifact, b"x" * 32)


@pytest.mark.parametrize("bad", ["", None, "abc", "g" * 64])
def test_missing_or_malformed_signature_is_refused(
    artifact: PolicyArtifact, request: pytest.FixtureRequest, bad: str | None
) -> None:
    request.getfixturevalue("no_deserialisation")
    with pytest.raises(PolicyIntegrityError, match="64-hex-digit"):
        verify_and_load(dataclasses.replace(artifact, signature=bad), KEY)


def test_short_or_missing_key_is_refused(ppo_policy: TrainedPolicy) -> None:
    with pytest.raises(PolicyIntegrityError, match="at least 32 bytes"):
        pack_policy(ppo_policy, b"short", "p0")
    with pytest.raises(PolicyIntegrityError, match="at least 32 bytes"):
        verify_and_load(pack_policy(ppo_policy, KEY, "p0"), None)


class _MemoryStore:
    """A duck-typed policy store (the GridFS one follows the same protocol)."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[PolicyArtifact, dict[str, Any]]] = {}

    def save_policy(self, artifact: PolicyArtifact, meta: dict[str, Any]) -> str:
        self.records[artifact.policy_id] = (artifact, dict(meta))
        return artifact.policy_id

    def load_policy(self, policy_id: str) -> PolicyArtifact:
        return self.records[policy_id][0]


def test_store_round_trip_and_tamper_refusal(
    ppo_policy: TrainedPolicy, bars: pd.DataFrame, tmp_path: Path
) -> None:
    store = _MemoryStore()
    engine = RLEngine(store=store, workdir=tmp_path / "runs", signing_key=KEY)
    policy = dataclasses.replace(ppo_policy, policy_id=None)
    policy_id = engine.save(policy)
    assert policy_id == f"ppo-{ppo_policy.sha256[:16]}" == policy.policy_id
    assert store.records[policy_id][1]["sha256"] == ppo_policy.sha256
    loaded = engine.load(policy_id)
    assert loaded.policy_id == policy_id and loaded.env_config == ppo_policy.env_config
    assert loaded.num_timesteps == 512 and loaded.hyperparams["n_steps"] == 128
    a, b = engine.replay(ppo_policy, bars), engine.replay(loaded, bars)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert a.metrics == b.metrics
    artifact, meta = store.records[policy_id]
    store.records[policy_id] = (
        dataclasses.replace(artifact, weights=_flip(artifact.weights)),
        meta,
    )
    with pytest.raises(PolicyIntegrityError):
        engine.load(policy_id)


def test_engine_without_store_or_key(ppo_policy: TrainedPolicy) -> None:
    with pytest.raises(RuntimeError, match="no store"):
        RLEngine().load("p0")
    with pytest.raises(PolicyIntegrityError, match="no signing_key"):
        RLEngine(store=_MemoryStore()).save(ppo_policy)
