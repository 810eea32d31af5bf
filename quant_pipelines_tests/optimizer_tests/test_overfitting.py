"""PBO by CSCV, effective number of trials and the Sharpe-ratio variance."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy.stats import rankdata

from quant_pipelines.optimizer.overfitting import (
    PBOResult,
    cluster_labels,
    effective_number_of_trials,
    probability_of_backtest_overfitting,
    sharpe_variance,
)


def _sharpe(x: np.ndarray) -> float:
    std = np.std(x, ddof=1)
    return 0.0 if std == 0 else float(np.mean(x) / std)


def reference_pbo(returns: np.ndarray, n_blocks: int, periods_per_year: float) -> dict:
    """Plain-loop CSCV, written from the paper's description."""
    t, n = returns.shape
    blocks = np.array_split(np.arange(t), n_blocks)
    logits, is_best, oos_best = [], [], []
    for combo in itertools.combinations(range(n_blocks), n_blocks // 2):
        is_rows = np.concatenate([blocks[i] for i in combo])
        oos_rows = np.concatenate([blocks[i] for i in range(n_blocks) if i not in combo])
        is_sr = [_sharpe(returns[is_rows, j]) for j in range(n)]
        oos_sr = [_sharpe(returns[oos_rows, j]) for j in range(n)]
        best = int(np.argmax(is_sr))
        omega = rankdata(oos_sr, method="average")[best] / (n + 1)
        logits.append(math.log(omega / (1 - omega)))
        is_best.append(is_sr[best])
        oos_best.append(oos_sr[best])
    scale = math.sqrt(periods_per_year)
    slope, intercept = np.polyfit(np.array(is_best) * scale, np.array(oos_best) * scale, 1)
    return {
        "pbo": float(np.mean(np.array(logits) <= 0)),
        "probability_of_loss": float(np.mean(np.array(oos_best) < 0)),
        "slope": slope,
        "intercept": intercept,
        "logits": np.array(logits),
    }


def _noise(seed: int, t: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.01, (t, n))


def test_hand_checked_two_columns_two_blocks():
    # a is good in block 0 only, b in block 1 only: the IS winner always loses OOS.
    a = [0.01, 0.03, -0.01, 0.01]  # Sharpe sqrt(2) on block 0, 0 on block 1
    b = [0.00, 0.02, 0.02, 0.04]  # Sharpe 1/sqrt(2) on block 0, 3/sqrt(2) on block 1
    res = probability_of_backtest_overfitting(
        np.column_stack([a, b]), n_blocks=2, periods_per_year=1.0
    )
    assert res.pbo == 1.0
    assert res.probability_of_loss == 0.0
    np.testing.assert_allclose(res.logits, [math.log(0.5)] * 2, rtol=1e-12)
    # IS-best Sharpe (sqrt 2, 3/sqrt 2) -> OOS (0, 1/sqrt 2): slope 1, intercept -sqrt 2.
    assert res.degradation_slope == pytest.approx(1.0, rel=1e-9)
    assert res.degradation_intercept == pytest.approx(-math.sqrt(2.0), rel=1e-9)
    assert (res.n_splits, res.n_blocks, res.n_configurations) == (2, 2, 2)


@pytest.mark.parametrize("n_blocks", [2, 4, 6, 8])
@pytest.mark.parametrize("n", [2, 3, 7])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_plain_loop_reference(n_blocks, n, seed):
    rng = np.random.default_rng(100 * n_blocks + 10 * n + seed)
    t = int(rng.integers(2 * n_blocks, 12 * n_blocks))  # uneven blocks too
    r = rng.normal(0.0005, 0.01, (t, n)) * rng.uniform(0.5, 2.0, n)
    got = probability_of_backtest_overfitting(r, n_blocks=n_blocks, periods_per_year=252.0)
    ref = reference_pbo(r, n_blocks, 252.0)
    assert got.n_splits == math.comb(n_blocks, n_blocks // 2) == len(got.logits)
    assert got.pbo == ref["pbo"]
    assert got.probability_of_loss == ref["probability_of_loss"]
    np.testing.assert_allclose(got.logits, ref["logits"], rtol=0, atol=1e-12)
    assert got.degradation_slope == pytest.approx(ref["slope"], rel=1e-10, abs=1e-12)
    assert got.degradation_intercept == pytest.approx(ref["intercept"], rel=1e-10, abs=1e-12)


def test_ties_and_constant_columns_match_reference():
    rng = np.random.default_rng(7)
    r = rng.normal(0.0, 0.01, (40, 4))
    r[:, 1] += 0.006  # usually the IS winner, and it has a twin: OOS ties need average ranks
    r = np.column_stack([r, r[:, 1], np.zeros(40)])  # the twin and a flat column
    r[:10, 2] = 0.0  # flat inside the first block only
    got = probability_of_backtest_overfitting(r, n_blocks=4)
    ref = reference_pbo(r, 4, 252.0)
    assert got.pbo == ref["pbo"]
    np.testing.assert_allclose(got.logits, ref["logits"], rtol=0, atol=1e-12)
    # The twins share ranks 5 and 6 of 6: rank 5.5, w = 5.5 / 7.
    assert np.any(np.isclose(got.logits, math.log(5.5 / 1.5)))


def test_pure_noise_overfits_about_half_the_time():
    # Under pure noise PBO per data set is spread widely (sd ~0.17 for N=50, S=16), so the
    # bound is on the mean over 24 independent data sets (sd of the mean ~0.035).
    results = [probability_of_backtest_overfitting(_noise(s, 2000, 50)) for s in range(24)]
    pbo = np.array([r.pbo for r in results])
    loss = np.array([r.probability_of_loss for r in results])
    assert 0.38 <= pbo.mean() <= 0.62
    assert 0.38 <= loss.mean() <= 0.62
    assert np.mean(pbo >= 0.2) >= 0.75
    assert all(r.degradation_slope < 0.5 for r in results)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_edge_is_not_overfit(seed):
    r = _noise(seed, 2000, 50)
    r[:, 5:15] += 0.001  # ten configurations capture a drift (annual Sharpe ~1.6)
    res = probability_of_backtest_overfitting(r)
    assert res.pbo < 0.1
    assert res.probability_of_loss < 0.05
    noise_only = probability_of_backtest_overfitting(_noise(seed, 2000, 50))
    assert res.pbo < noise_only.pbo or noise_only.pbo < 0.1


def test_invariant_to_column_scale_and_annualisation_scales_intercept():
    r = _noise(3, 600, 12) + 0.0003
    base = probability_of_backtest_overfitting(r, n_blocks=8, periods_per_year=252.0)
    scaled = probability_of_backtest_overfitting(
        r * np.linspace(0.5, 3.0, 12), n_blocks=8, periods_per_year=52.0
    )
    assert scaled.pbo == base.pbo
    np.testing.assert_allclose(scaled.logits, base.logits, atol=1e-12)
    assert scaled.degradation_slope == pytest.approx(base.degradation_slope, rel=1e-9)
    assert scaled.degradation_intercept == pytest.approx(
        base.degradation_intercept * math.sqrt(52.0 / 252.0), rel=1e-9
    )


def test_to_dict_is_json_without_logits():
    res = probability_of_backtest_overfitting(_noise(0, 100, 3), n_blocks=4)
    d = res.to_dict()
    assert "logits" not in d
    assert set(d) == set(PBOResult.__dataclass_fields__) - {"logits"}
    assert json.loads(json.dumps(d)) == d
    assert isinstance(d["n_splits"], int) and isinstance(d["pbo"], float)


@pytest.mark.parametrize(
    ("returns", "kwargs", "match"),
    [
        (np.zeros((100, 1)), {}, "at least 2 configurations"),
        (np.zeros(100), {}, "T x N"),
        (_noise(0, 100, 3), {"n_blocks": 5}, "even"),
        (_noise(0, 100, 3), {"n_blocks": 0}, "even, >= 2"),
        (_noise(0, 100, 3), {"n_blocks": 22}, "<= 20"),
        (_noise(0, 31, 3), {"n_blocks": 16}, "2 rows per block"),
        (np.where(np.eye(40, 3) > 0, np.nan, 0.01), {"n_blocks": 4}, "finite"),
        (_noise(0, 100, 3), {"n_blocks": 4, "periods_per_year": 0.0}, "periods_per_year"),
    ],
)
def test_pbo_errors(returns, kwargs, match):
    with pytest.raises(ValueError, match=match):
        probability_of_backtest_overfitting(returns, **kwargs)


def _groups(seed: int, sizes: list[int], t: int = 500) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cols = []
    for size in sizes:
        base = rng.normal(0.0, 0.01, t)
        cols += [base + rng.normal(0.0, 0.0005, t) for _ in range(size)]
    return np.column_stack(cols)[:, rng.permutation(sum(sizes))]


def test_near_duplicate_groups_are_one_trial_each():
    r = _groups(0, [4, 7, 2])
    assert effective_number_of_trials(r) == 3
    labels = cluster_labels(r)
    assert labels[0] == 0 and set(labels.tolist()) == {0, 1, 2}
    corr = np.corrcoef(r.T)
    same = labels[:, None] == labels[None, :]
    assert corr[same].min() > 0.9 and corr[~same].max() < 0.5


def test_independent_columns_are_all_trials():
    assert effective_number_of_trials(_noise(1, 500, 9)) == 9
    assert effective_number_of_trials(_noise(1, 500, 1)) == 1
    # Even a loose threshold keeps independent series apart; -1 merges everything.
    assert effective_number_of_trials(_noise(1, 500, 9), max_correlation=0.3) == 9
    assert effective_number_of_trials(_noise(1, 500, 9), max_correlation=-1.0) == 1


def test_constant_columns_are_one_cluster():
    r = np.column_stack([np.zeros(300), _noise(2, 300, 2), np.full(300, 0.004), np.zeros(300)])
    labels = cluster_labels(r)
    assert labels[0] == labels[3] == labels[4]
    assert len(set(labels.tolist())) == 3


def test_cluster_errors():
    with pytest.raises(ValueError, match="max_correlation"):
        cluster_labels(_noise(0, 50, 3), max_correlation=1.5)
    with pytest.raises(ValueError, match="finite"):
        cluster_labels(np.full((50, 3), np.inf))


def test_sharpe_variance_clusters_win_for_a_converged_population():
    rng = np.random.default_rng(0)
    # A sampler piled 90 trials onto one region; 3 other regions were tried a few times.
    sharpes = np.concatenate([0.05 + rng.normal(0, 0.002, 90), [-0.08, -0.07, 0.0, 0.01, 0.12]])
    labels = [0] * 90 + [1, 1, 2, 2, 3]
    value, source = sharpe_variance(sharpes.tolist(), cluster_labels=labels)
    means = [sharpes[:90].mean(), -0.075, 0.005, 0.12]
    assert source == "clusters"
    assert value == pytest.approx(np.var(means, ddof=1), rel=1e-12)
    assert value > np.var(sharpes, ddof=1)
    assert sharpe_variance(sharpes.tolist()) == (pytest.approx(np.var(sharpes, ddof=1)), "trials")


def test_sharpe_variance_trials_otherwise():
    rng = np.random.default_rng(1)
    sharpes = rng.normal(0.0, 0.05, 40)
    # Clusters that each hold a mix of good and bad trials have closer means.
    labels = np.arange(40) % 4
    value, source = sharpe_variance(sharpes, cluster_labels=labels)
    assert source == "trials"
    assert value == pytest.approx(np.var(sharpes, ddof=1), rel=1e-12)
    # One cluster, or every trial its own cluster: the trials' variance.
    assert sharpe_variance(sharpes, cluster_labels=[7] * 40)[1] == "trials"
    assert sharpe_variance(sharpes, cluster_labels=range(40)) == (value, "trials")


def test_sharpe_variance_small_and_bad_inputs():
    assert sharpe_variance([]) == (0.0, "trials")
    assert sharpe_variance([0.3], cluster_labels=[0]) == (0.0, "trials")
    with pytest.raises(ValueError, match="2 entries for 3"):
        sharpe_variance([0.1, 0.2, 0.3], cluster_labels=[0, 1])
    with pytest.raises(ValueError, match="finite"):
        sharpe_variance([0.1, float("nan")])
