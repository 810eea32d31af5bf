"""The cost model in a policy's env_config: either model round-trips, old flat specs still load."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quant_pipelines.backtest.costs import FlatCosts, VolumeShareCosts
from quant_pipelines.rl import (
    PolicyFormatError,
    RLEngine,
    TrainedPolicy,
    pack_policy,
    verify_and_load,
)
from quant_pipelines.rl._envs import costs_config, costs_from_config, env_config
from quant_pipelines.rl._jsontypes import canonical_json
from quant_pipelines.rl.hashing import sign_policy
from quant_pipelines_tests.rl_tests._params import TINY_PPO

KEY = b"k" * 32
VOLUME_SHARE = VolumeShareCosts(0.0005, 1.0, impact=0.3, max_participation=0.05, window=10)


def _with_costs(policy: TrainedPolicy, costs: dict) -> TrainedPolicy:
    return dataclasses.replace(policy, env_config={**policy.env_config, "costs": costs})


def test_flat_costs_are_stored_without_a_tag(ppo_policy: TrainedPolicy) -> None:
    # The fields of old specs exactly: their text, hence their signatures, do not change.
    config = env_config(action_space="discrete", costs=None, max_drawdown=None, options=None)
    assert config["costs"] == {"commission": 0.001, "slippage_bps": 2.0}
    assert costs_config(FlatCosts(0.002, 3.0)) == {"commission": 0.002, "slippage_bps": 3.0}
    spec = json.loads(pack_policy(ppo_policy, KEY, "p0").spec)
    assert spec["env_config"]["costs"] == {"commission": 0.001, "slippage_bps": 2.0}
    assert costs_from_config(spec["env_config"]["costs"]) == FlatCosts()


def test_volume_share_costs_round_trip_through_a_signed_spec(
    ppo_policy: TrainedPolicy, bars: pd.DataFrame
) -> None:
    stored = costs_config(VOLUME_SHARE)
    assert stored == {"model": "volume_share", **dataclasses.asdict(VOLUME_SHARE)}
    policy = _with_costs(ppo_policy, stored)
    loaded = verify_and_load(pack_policy(policy, KEY, "p1"), KEY, policy_id="p1")
    assert loaded.env_config == policy.env_config
    env = loaded.make_env(bars)
    assert env.costs == VOLUME_SHARE and type(env.costs) is VolumeShareCosts
    flat = verify_and_load(pack_policy(ppo_policy, KEY, "p0"), KEY, policy_id="p0")
    assert type(flat.make_env(bars).costs) is FlatCosts  # an untagged spec: flat costs


@pytest.mark.parametrize(
    ("costs", "match"),
    [
        ({"model": "zipline", "commission": 0.001}, r"costs.model must be one of .* 'zipline'"),
        ({"commission": 0.001, "impact": 0.1}, r"unknown fields \['impact'\] for 'flat'"),
        ({"model": "volume_share", "window": 1}, "window must be an integer >= 2"),
        ({"commission": 2.0}, r"commission must be in \[0, 1\)"),
    ],
    ids=["unknown-model", "flat-with-impact", "bad-window", "bad-commission"],
)
def test_bad_costs_in_a_signed_spec_are_refused(
    ppo_policy: TrainedPolicy, costs: dict, match: str
) -> None:
    artifact = pack_policy(ppo_policy, KEY, "p2")
    doc = json.loads(artifact.spec)
    doc["env_config"]["costs"] = costs
    text = canonical_json(doc)
    bad = dataclasses.replace(
        artifact, spec=text, signature=sign_policy(KEY, artifact.weights, text)
    )
    with pytest.raises(PolicyFormatError, match=f"env_config.costs: .*{match}"):
        verify_and_load(bad, KEY, policy_id="p2")
    with pytest.raises(PolicyFormatError, match=match):  # nor is such a policy stored
        pack_policy(_with_costs(ppo_policy, costs), KEY, "p3")


def test_training_with_volume_share_costs_batched(bars: pd.DataFrame, tmp_path: Path) -> None:
    engine = RLEngine(workdir=tmp_path)
    policy = engine.train(
        bars, algo="ppo", total_timesteps=256, seed=3, hyperparams=TINY_PPO, costs=VOLUME_SHARE,
        n_envs=2, vec_env="batched", eval_freq=128,
    )  # fmt: skip
    assert policy.env_config["costs"]["model"] == "volume_share"
    loaded = verify_and_load(pack_policy(policy, KEY, "p4"), KEY, policy_id="p4")
    assert loaded.make_env(bars).costs == VOLUME_SHARE
    a, b = engine.replay(policy, bars), engine.replay(loaded, bars)
    assert a.costs == VOLUME_SHARE
    np.testing.assert_array_equal(a.equity, b.equity)
