"""Hansen's SPA test: FastSPA reproduces stock arch, and spa_test's behaviour."""

from __future__ import annotations

import json

import numpy as np
import pytest
from arch.bootstrap import SPA
from scipy.linalg import toeplitz

from quant_pipelines.optimizer._spa import FastSPA, toeplitz_forms
from quant_pipelines.optimizer.overfitting import SPAResult, spa_test


def _data(seed: int, t: int = 400, n: int = 20, *, edge: float = 0.0):
    rng = np.random.default_rng(seed)
    bench = rng.normal(0.0003, 0.01, t)
    models = bench[:, None] + rng.normal(0.0, 0.005, (t, n))
    models[:, : n // 4] += edge
    return bench, models


def _pair(bench, models, **kwargs):
    stock = SPA(-bench, -models, **kwargs)
    fast = FastSPA(-bench, -models, **kwargs)
    stock.compute()
    fast.compute()
    return stock, fast


def _assert_same(stock: SPA, fast: FastSPA) -> None:
    np.testing.assert_allclose(fast._loss_diff_var, stock._loss_diff_var, rtol=1e-9, atol=0)
    np.testing.assert_array_equal(fast._valid_columns, stock._valid_columns)
    np.testing.assert_allclose(fast._simulated_vals, stock._simulated_vals, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(fast.pvalues.to_numpy(), stock.pvalues.to_numpy())
    np.testing.assert_allclose(fast.critical_values(0.1), stock.critical_values(0.1), atol=1e-15)
    # The bootstrap consumed the same random numbers and ends on the same draw.
    assert fast.bootstrap.state == stock.bootstrap.state
    np.testing.assert_array_equal(fast.bootstrap.index, stock.bootstrap.index)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("edge", [0.0, 0.0005, 0.002, -0.0005])
def test_fast_spa_equals_stock_arch(seed, edge):
    bench, models = _data(seed, edge=edge)
    stock, fast = _pair(bench, models, reps=200, seed=seed)
    _assert_same(stock, fast)


@pytest.mark.parametrize("block_size", [1, 3, 50])
def test_fast_spa_equals_stock_with_other_block_sizes_and_degenerate_columns(block_size):
    bench, models = _data(9, t=300, n=6, edge=0.0004)
    models = np.column_stack([models, models[:, 0], bench, bench + 0.0002, bench - 0.0002])
    stock, fast = _pair(bench, models, reps=150, seed=5, block_size=block_size)
    _assert_same(stock, fast)
    assert np.all(np.isfinite(fast.pvalues.to_numpy()))


def test_tie_aware_pvalues_equal_arch_on_continuous_data():
    bench, models = _data(4, edge=0.0004)
    stock, fast = _pair(bench, models, reps=200, seed=4)
    assert fast.tie_aware_pvalues() == stock.pvalues.to_dict()


@pytest.mark.parametrize("t", [1, 2, 37, 64])
def test_toeplitz_forms_match_dense_matrices(t):
    rng = np.random.default_rng(t)
    x = rng.normal(size=(t, 3))
    kernel = rng.normal(size=t)
    dense = np.einsum("sj,su,uj->j", x, toeplitz(kernel), x)
    np.testing.assert_allclose(toeplitz_forms(x, kernel), dense, rtol=1e-10, atol=1e-12)


def test_planted_edge_is_detected():
    bench, models = _data(0, t=1000, n=20)
    models[:, 3] += 0.002
    res = spa_test(bench, models, reps=500, seed=1)
    assert res.pvalue < 0.05
    assert res.pvalue_lower <= res.pvalue <= res.pvalue_upper


def test_noise_around_the_benchmark_is_not_significant():
    # Under this null the p-value is roughly uniform per data set, so the bounds are on 40
    # independent data sets: the mean p-value and the rejection rate at 5%.
    p = np.array(
        [spa_test(*_data(100 + s, t=500, n=20), reps=200, seed=s).pvalue for s in range(40)]
    )
    assert p.mean() > 0.3
    assert np.mean(p < 0.05) <= 0.2
    worse = _data(7, t=500, n=20, edge=-0.001)  # a quarter clearly worse, the rest noise
    assert spa_test(*worse, reps=200, seed=0).pvalue > 0.05


def test_models_equal_to_the_benchmark_give_pvalue_one():
    bench, models = _data(1, t=300, n=4)
    copies = np.column_stack([bench, bench, bench - 0.001])
    res = spa_test(bench, copies, reps=100)
    assert (res.pvalue_lower, res.pvalue, res.pvalue_upper) == (1.0, 1.0, 1.0)
    stock = SPA(-bench, -copies, reps=100, seed=0)
    stock.compute()
    assert stock.pvalues["consistent"] == 0.0  # arch's strict ">" on exact ties
    mixed = spa_test(bench, np.column_stack([models, bench]), reps=100)
    assert 0.0 <= mixed.pvalue <= 1.0


def test_seed_reproducibility():
    bench, models = _data(3, t=300, n=10, edge=0.0003)
    a = spa_test(bench, models, reps=200, seed=11)
    assert a == spa_test(bench, models, reps=200, seed=11)
    others = [spa_test(bench, models, reps=200, seed=s) for s in range(5)]
    for r in others:
        assert 0.0 <= r.pvalue_lower <= r.pvalue <= r.pvalue_upper <= 1.0
    assert len({(r.pvalue, r.pvalue_upper) for r in [*others, a]}) > 1


def test_result_fields_and_json():
    bench, models = _data(0, t=100, n=3)
    res = spa_test(bench, models, reps=50, seed=2)
    assert isinstance(res, SPAResult)
    assert (res.n_models, res.reps, res.block_size, res.seed) == (3, 50, 10, 2)
    assert spa_test(bench, models, reps=50, block_size=4).block_size == 4
    d = res.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert isinstance(d["pvalue"], float) and isinstance(d["reps"], int)


@pytest.mark.parametrize(
    ("bench_shape", "models_shape", "shown"),
    [
        ((100, 1), (100, 3), "(100, 1)"),
        ((100,), (100,), "(100,)"),
        ((100,), (99, 3), "(99, 3)"),
        ((100,), (100, 0), "(100, 0)"),
    ],
)
def test_shape_errors_name_the_shapes(bench_shape, models_shape, shown):
    with pytest.raises(ValueError, match=r"shape") as info:
        spa_test(np.zeros(bench_shape), np.zeros(models_shape))
    assert shown in str(info.value)


def test_other_errors():
    bench, models = _data(0, t=50, n=2)
    with pytest.raises(ValueError, match="reps"):
        spa_test(bench, models, reps=0)
    with pytest.raises(ValueError, match="block_size"):
        spa_test(bench, models, block_size=0)
    models[3, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        spa_test(bench, models)
    with pytest.raises(ValueError, match="2 rows"):
        spa_test(np.zeros(1), np.zeros((1, 2)))
