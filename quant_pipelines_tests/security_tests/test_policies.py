"""RL policies: safetensors + signed JSON in MongoDB, loaded and replayed without any unpickling.

Against the session's real MongoDB server: a stored policy predicts exactly like the original,
its load and replay never reach pickle/cloudpickle/torch.load, a swapped or tampered policy is
refused before anything is parsed, a signed pickle payload is refused by the schema, path-like
ids are refused, and the signing key lives outside the database.
"""

from __future__ import annotations

import _pickle
import base64
import dataclasses
import json
import pickle
import stat
import zipfile
from pathlib import Path
from typing import Any

import cloudpickle
import gridfs
import numpy as np
import pandas as pd
import pytest
import safetensors.torch
import torch
from pymongo.database import Database

from quant_pipelines.owner_files import InsecureFileError, new_secret
from quant_pipelines.rl import (
    POLICY_ID_PATTERN,
    PolicyFormatError,
    PolicyIntegrityError,
    RLEngine,
    TrainedPolicy,
    _spec,
    check_policy_id,
    sign_policy,
)
from quant_pipelines.simulator._synthetic import random_walk_bars
from quant_pipelines.storage import policies as store_module
from quant_pipelines.storage._signing_key import KEY_ENV, policy_signing_key
from quant_pipelines.storage.policies import (
    GridFSPolicyStore,
    InvalidPolicyIdError,
    PolicyNotFoundError,
    resign_policies,
)

KEY = new_secret().encode()
OTHER_KEY = new_secret().encode()
NET = {"net_arch": [16, 16]}
OFF_POLICY = {"learning_starts": 32, "buffer_size": 1_000, "batch_size": 16, "policy_kwargs": NET}
CONFIGS: dict[str, dict[str, Any]] = {
    "ppo": {"algo": "ppo", "hyperparams": {"n_steps": 64, "n_epochs": 1, "policy_kwargs": NET}},
    "ppo-continuous-normalized": {
        "algo": "ppo",
        "action_space": "continuous",
        "normalize": True,
        "hyperparams": {"n_steps": 64, "n_epochs": 1, "policy_kwargs": NET},
    },
    "a2c": {"algo": "a2c", "hyperparams": {"n_steps": 16, "policy_kwargs": NET}},
    "dqn": {"algo": "dqn", "hyperparams": OFF_POLICY},
    "sac": {"algo": "sac", "action_space": "continuous", "hyperparams": OFF_POLICY},
}


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return random_walk_bars(300, seed=3)


@pytest.fixture(scope="module")
def trained(bars: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One tiny policy per supported algorithm (and a continuous, normalised PPO)."""
    engine = RLEngine(workdir=tmp_path_factory.mktemp("train"))
    return {
        name: engine.train(
            bars, total_timesteps=64, seed=7, validation_fraction=0.0, checkpoint_freq=64, **cfg
        )
        for name, cfg in CONFIGS.items()
    }


@pytest.fixture
def store(mongo_db: Database) -> GridFSPolicyStore:
    return GridFSPolicyStore(mongo_db)


@pytest.fixture
def engine(store: GridFSPolicyStore, tmp_path: Path) -> RLEngine:
    return RLEngine(store=store, workdir=tmp_path / "work", signing_key=KEY)


def _save(engine: RLEngine, policy: TrainedPolicy, policy_id: str) -> str:
    return engine.save(dataclasses.replace(policy, policy_id=policy_id))


def _forbidden(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a stored policy reached pickle / cloudpickle / torch.load / zipfile")


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every deserialiser that could run code (and SB3's zip reader) raises if reached."""
    for module, names in [
        (pickle, ("loads", "load", "Unpickler", "_loads", "_load", "_Unpickler")),
        (_pickle, ("loads", "load", "Unpickler")),
        (cloudpickle, ("loads", "load")),
        (torch, ("load",)),
        (torch.serialization, ("load",)),
        (np, ("load",)),
        (zipfile, ("ZipFile",)),
    ]:
        for name in names:
            monkeypatch.setattr(module, name, _forbidden)
    with pytest.raises(AssertionError, match="reached pickle"):  # the trap is armed
        pickle.loads(b"\x80\x04K\x01.")


def _observations(policy: TrainedPolicy, bars: pd.DataFrame, n: int = 1_000) -> np.ndarray:
    """Random observations over the space's bounds plus a real trajectory's."""
    space = policy.model.observation_space
    rng = np.random.default_rng(0)
    random = rng.uniform(space.low, space.high, size=(n, *space.shape)).astype(space.dtype)
    env = policy.make_env(bars, random_start=False, episode_length=None)
    obs, _ = env.reset(seed=0)
    real = [obs]
    for _ in range(200):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        real.append(obs)
        if terminated or truncated:
            break
    return np.concatenate([random, np.asarray(real, dtype=space.dtype)])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONFIGS))
def test_round_trip_predicts_exactly_like_the_original(
    name: str, trained: dict, engine: RLEngine, mongo_db: Database, bars: pd.DataFrame
) -> None:
    original = trained[name]
    policy_id = _save(engine, original, f"BTCUSD-{name}-s7")
    doc = mongo_db.rl_policies.find_one({"policy_id": policy_id})
    weights = gridfs.GridFS(mongo_db, collection="rl_policy_files").get(doc["file_id"]).read()
    assert doc["format"] == "safetensors+json/1" and len(doc["signature"]) == 64
    assert set(safetensors.torch.load(weights)) == set(original.model.policy.state_dict())
    assert json.loads(doc["spec"])["algo"] == original.algo and ":serialized:" not in doc["spec"]

    loaded = engine.load(policy_id)
    assert loaded.path is None and loaded.sha256 == doc["sha256"] == original.sha256
    assert loaded.model.observation_space == original.model.observation_space
    assert loaded.model.action_space == original.model.action_space
    assert loaded.obs_norm == original.obs_norm and loaded.env_config == original.env_config
    assert loaded.num_timesteps == original.num_timesteps == 64
    obs = _observations(original, bars)
    expected, _ = original.model.predict(obs, deterministic=True)
    actual, _ = loaded.model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(actual, expected)
    for o in obs[::50]:
        np.testing.assert_array_equal(loaded.predict(o), original.predict(o))
    a, b = engine.replay(original, bars), engine.replay(loaded, bars)
    pd.testing.assert_series_equal(a.positions, b.positions)
    assert a.metrics == b.metrics


@pytest.mark.parametrize("name", ["ppo-continuous-normalized", "dqn", "sac"])
def test_load_and_replay_never_unpickle(
    name: str, trained: dict, engine: RLEngine, bars: pd.DataFrame, request: pytest.FixtureRequest
) -> None:
    original = trained[name]
    policy_id = _save(engine, original, f"{name}-trap")
    expected = engine.replay(original, bars, start=bars.index[200])
    request.getfixturevalue("no_unpickling")
    loaded = engine.load(policy_id)
    result = engine.replay(loaded, bars, start=bars.index[200])
    episodes = engine.evaluate_episodes(loaded, bars, n_episodes=2, seed=0, episode_length=20)
    pd.testing.assert_series_equal(result.equity, expected.equity)
    assert result.metrics == expected.metrics and episodes["n_episodes"] == 2


def _doc(db: Database, policy_id: str) -> dict:
    return db.rl_policies.find_one({"policy_id": policy_id})


def _set(db: Database, policy_id: str, **fields: Any) -> None:
    db.rl_policies.update_one({"policy_id": policy_id}, {"$set": fields})


def test_swapped_weights_hash_metadata_or_whole_artifact_are_refused(
    trained: dict, engine: RLEngine, mongo_db: Database
) -> None:
    good = _save(engine, trained["ppo"], "good")
    evil_policy = engine.load(good)
    with torch.no_grad():
        evil_policy.model.policy.action_net.bias += 5.0  # same architecture, other behaviour
    evil = _save(engine, evil_policy, "evil")
    g, e = _doc(mongo_db, good), _doc(mongo_db, evil)
    assert g["sha256"] != e["sha256"]

    _set(mongo_db, good, file_id=e["file_id"], sha256=e["sha256"])  # weights and their hash
    with pytest.raises(PolicyIntegrityError, match="signature does not verify"):
        engine.load(good)
    _set(mongo_db, good, spec=e["spec"])  # ... and the metadata
    with pytest.raises(PolicyIntegrityError, match="signature does not verify"):
        engine.load(good)
    _set(mongo_db, good, signature=e["signature"])  # the whole (validly signed) artifact
    with pytest.raises(PolicyIntegrityError, match="holds the signed policy 'evil'"):
        engine.load(good)

    _set(mongo_db, good, **{k: g[k] for k in ("file_id", "sha256", "spec", "signature")})
    assert engine.load(good).sha256 == g["sha256"]  # restored: the right key verifies
    other = RLEngine(store=engine.store, signing_key=OTHER_KEY)
    with pytest.raises(PolicyIntegrityError, match="signature does not verify"):
        other.load(good)
    forged = sign_policy(OTHER_KEY, engine.store.load_policy(evil).weights, e["spec"])
    _set(mongo_db, evil, signature=forged)  # signed by someone without our key
    with pytest.raises(PolicyIntegrityError, match="signature does not verify"):
        engine.load(evil)
    with pytest.raises(PolicyIntegrityError, match="no signing_key"):
        RLEngine(store=engine.store).load(good)


def test_tampered_metadata_or_weights_are_refused_before_parsing(
    trained: dict, engine: RLEngine, mongo_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy_id = _save(engine, trained["a2c"], "tamper")
    doc = _doc(mongo_db, policy_id)
    monkeypatch.setattr(_spec, "parse_spec", _forbidden)
    monkeypatch.setattr(safetensors.torch, "load", _forbidden)
    _set(mongo_db, policy_id, spec=doc["spec"].replace('"seed":7', '"seed":8'))
    with pytest.raises(PolicyIntegrityError, match="nothing was parsed"):
        engine.load(policy_id)
    _set(mongo_db, policy_id, spec=doc["spec"])
    chunks = mongo_db["rl_policy_files.chunks"]
    chunk = chunks.find_one({"files_id": doc["file_id"], "n": 0})
    data = bytearray(chunk["data"])
    data[-1] ^= 0x01  # one bit of one weight
    chunks.update_one({"_id": chunk["_id"]}, {"$set": {"data": bytes(data)}})
    with pytest.raises(PolicyIntegrityError, match="nothing was parsed"):
        engine.load(policy_id)
    _set(mongo_db, policy_id, signature=None)
    with pytest.raises(PolicyIntegrityError, match="64-hex-digit"):
        engine.load(policy_id)


class _Payload:
    """Unpickling this would create ``marker``: proof that nothing was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def _edit_pickle(doc: dict, where: str, payload: str) -> None:
    if where == "obs_norm":
        doc["obs_norm"] = payload  # a pickle where an object is expected
    elif where == "metrics":
        doc["metrics"]["note"] = payload  # a pickle hidden in a free-form string
    elif where == "activation_fn":  # SB3's own format for objects
        doc["hyperparams"]["policy_kwargs"]["activation_fn"] = {":serialized:": payload}
    elif where == "extra_field":
        doc["model"] = {":serialized:": payload}


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("obs_norm", "obs_norm: a base64 pickle payload is refused"),
        ("metrics", "base64 pickle payload"),
        ("activation_fn", "serialized-object field ':serialized:'"),
        ("extra_field", "serialized-object field ':serialized:'"),
    ],
)
def test_a_signed_pickle_payload_is_refused_and_never_unpickled(
    where: str,
    message: str,
    trained: dict,
    engine: RLEngine,
    mongo_db: Database,
    tmp_path: Path,
    no_unpickling: None,
) -> None:
    marker = tmp_path / "pwned"
    payload = base64.b64encode(pickle.dumps(_Payload(marker), protocol=4)).decode()
    policy_id = _save(engine, trained["dqn"], "payload")
    stored = engine.store.load_policy(policy_id)
    doc = json.loads(stored.spec)
    _edit_pickle(doc, where, payload)
    spec = _spec.canonical_json(doc)
    _set(mongo_db, policy_id, spec=spec, signature=sign_policy(KEY, stored.weights, spec))
    with pytest.raises(PolicyFormatError, match=message):
        engine.load(policy_id)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.replace(",", ", ", 1), "canonical"),
        (lambda s: s.replace('"seed":7', '"seed":NaN'), "non-JSON constant NaN"),
        (lambda s: s.replace('"seed":7', '"seed":"7"'), "seed: expected int"),
        (lambda s: s.replace('"seed":7', '"seed":true'), "seed: expected int"),
        (lambda s: s.replace('"algo":"dqn"', '"algo":"dqn","algo":"sac"'), "repeats the key"),
        (lambda s: s.replace('"hyperparams":{', '"hyperparams":{"aaa":1,'), "not a storable"),
        (
            lambda s: s.replace('"policy_kwargs":{', '"policy_kwargs":{"activation_fn":"system",'),
            "'system' is not one of",
        ),
    ],
)
def test_signed_metadata_is_parsed_strictly(
    edit: Any, message: str, trained: dict, engine: RLEngine, mongo_db: Database
) -> None:
    policy_id = _save(engine, trained["dqn"], "strict")
    stored = engine.store.load_policy(policy_id)
    spec = edit(stored.spec)
    assert spec != stored.spec
    _set(mongo_db, policy_id, spec=spec, signature=sign_policy(KEY, stored.weights, spec))
    with pytest.raises(PolicyFormatError, match=message):
        engine.load(policy_id)


BAD_IDS = ["../../../tmp/evil", "..", "a/../b", "/etc/passwd", "a/b", ".hidden", "-x", "a..b"]
BAD_IDS += ["x" * 129, "", "ok\n", "ok\x00", "é"]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("bad", BAD_IDS)
def test_path_like_policy_ids_are_refused_and_nothing_is_written(
    bad: str, trained: dict, engine: RLEngine, mongo_db: Database, tmp_path: Path
) -> None:
    good = _save(engine, trained["ppo"], "BTCUSD-ppo-s7-0a1b2c3d")
    forged = {**_doc(mongo_db, good), "policy_id": bad}
    forged.pop("_id")
    mongo_db.rl_policies.insert_one(forged)  # e.g. written by whoever can write the database
    assert engine.store.latest()[0]["policy_id"] in (bad, good)
    before = _tree(tmp_path)
    with pytest.raises(PolicyIntegrityError, match="invalid policy id"):
        engine.load(bad)
    with pytest.raises(InvalidPolicyIdError):
        engine.store.load_policy(bad)
    with pytest.raises(PolicyIntegrityError, match="invalid policy id"):
        _save(engine, trained["ppo"], bad)
    with pytest.raises(InvalidPolicyIdError):
        engine.store.save_policy(
            dataclasses.replace(engine.store.load_policy(good), policy_id=bad), {}
        )
    engine.load(good)  # a valid load happens in memory too
    assert _tree(tmp_path) == before
    assert not (tmp_path.parent / "evil").exists() and not Path("/tmp/evil").exists()


@pytest.mark.parametrize(
    "policy_id", [*BAD_IDS, "BTCUSD-ppo-s0-1a2b3c4d", "ppo-0123abcd", "A.b_c-1"]
)
def test_rl_and_storage_accept_the_same_ids(policy_id: str) -> None:
    rl_ok = store_ok = True
    try:
        check_policy_id(policy_id)
    except PolicyIntegrityError:
        rl_ok = False
    try:
        store_module.check_policy_id(policy_id)
    except InvalidPolicyIdError:
        store_ok = False
    assert rl_ok == store_ok == (policy_id not in BAD_IDS)
    assert POLICY_ID_PATTERN.pattern == store_module.POLICY_ID_PATTERN.pattern


def test_signing_key_comes_from_the_environment_or_an_owner_only_file(tmp_path: Path) -> None:
    env = {"DAGSTER_HOME": str(tmp_path)}
    key = policy_signing_key(env)
    path = tmp_path / "secrets" / "policy_signing.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(key) >= 32
    assert policy_signing_key(env) == key  # created once, then read
    assert [p.name for p in path.parent.iterdir()] == ["policy_signing.key"]
    assert policy_signing_key({**env, KEY_ENV: "e" * 40}) == b"e" * 40
    with pytest.raises(ValueError, match="at least 32"):
        policy_signing_key({**env, KEY_ENV: "short"})
    path.chmod(0o644)
    with pytest.raises(InsecureFileError):
        policy_signing_key(env)


def test_rotating_the_key_and_resigning(
    trained: dict, engine: RLEngine, mongo_db: Database
) -> None:
    kept = _save(engine, trained["sac"], "kept")
    tampered = _save(engine, trained["a2c"], "tampered")
    _set(mongo_db, tampered, spec=_doc(mongo_db, tampered)["spec"].replace("7", "9", 1))
    new_key = new_secret().encode()
    rotated = RLEngine(store=engine.store, signing_key=new_key)
    with pytest.raises(PolicyIntegrityError):
        rotated.load(kept)  # rotating the key invalidates every existing signature
    report = resign_policies(mongo_db, KEY, new_key)
    assert report == {"resigned": [kept], "refused": [tampered]}
    assert rotated.load(kept).algo == "sac"
    with pytest.raises(PolicyIntegrityError):
        engine.load(kept)  # the old key no longer verifies
    with pytest.raises(PolicyIntegrityError):
        rotated.load(tampered)  # re-signing never launders a tampered policy


def test_an_old_zip_record_is_not_loaded(engine: RLEngine, mongo_db: Database) -> None:
    mongo_db.rl_policies.insert_one({"policy_id": "legacy", "sha256": "0" * 64, "file_id": 1})
    with pytest.raises(PolicyNotFoundError, match="old SB3 zips are not loaded"):
        engine.load("legacy")
