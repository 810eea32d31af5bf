"""Hansen's SPA test: a vectorised drop-in for :class:`arch.bootstrap.SPA`, and :func:`spa_test`.

:func:`spa_test` and :class:`SPAResult` are re-exported by
:mod:`quant_pipelines.optimizer.overfitting`; :class:`FastSPA` gives arch's numbers more than
10x faster (T=3500, N=300, 1000 replications: 0.1-0.2 s instead of 2.2-3.2 s).

Stock ``arch`` spends almost all of an SPA run in two places: ``_compute_variance`` (a Python
loop over all ``T - 1`` lags, ``O(T^2 N)``) and ``_simulate_values`` (one ``T x N`` gather and
mean per bootstrap replication). :class:`FastSPA` overrides exactly these two methods:

* the variance uses the same kernel weights ``kappa_i`` as arch's non-nested branch; the sum
  over all lags of ``kappa_i`` times the lag products is a Toeplitz quadratic form, computed
  for all columns with one FFT each (``O(N T log T)``);
* the bootstrap draws the *same* indices as arch (``reps`` calls of
  ``self.bootstrap.update_indices()`` in order, as arch's ``bootstrap()`` generator does), turns
  each replication into a count vector over the ``T`` bars and gets every bootstrap mean with
  one matrix product ``counts @ loss_diff / T``.

Everything else (validity of columns, re-centering, p-values, critical values) is arch's.

arch counts a replication as exceeding the observed statistic only when strictly larger. With
a model identical to the benchmark (or differing by a constant) every replication *ties* and
arch reports p = 0, "some model beats the benchmark". :meth:`FastSPA.tie_aware_pvalues` counts
ties (within rounding) as exceedances; on continuous data it equals arch's p-values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from arch.bootstrap import SPA
from scipy import fft as sp_fft

__all__ = ["FastSPA", "SPAResult", "spa_test"]

_CHUNK_REPS = 256  # bootstrap replications per count matrix (bounds memory at 256 x T floats)
_TIE_RTOL = 1e-10  # ties: within this share of the largest |loss differential|


def toeplitz_forms(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``sum_{s,u} x[s, j] * x[u, j] * kernel[|s - u|]`` for every column ``j``, by one FFT.

    The symmetric Toeplitz matrix of ``kernel`` is embedded in a circulant matrix of size
    ``n >= 2T - 1``; for zero-padded ``x`` its quadratic form is ``sum_f C(f) |X(f)|^2 / n``
    (Parseval), with ``C`` the (real) spectrum of the circulant's first column.

    Args:
        x: ``T x N`` matrix.
        kernel: ``T`` weights, ``kernel[i]`` for lag ``i``.

    Returns:
        ``N`` quadratic forms.
    """
    t = x.shape[0]
    n = sp_fft.next_fast_len(2 * t - 1, real=True)
    column = np.zeros(n)
    column[:t] = kernel
    column[n - t + 1 :] = kernel[:0:-1]
    weights = sp_fft.rfft(column).real
    weights[1:] *= 2.0  # rfft keeps half the spectrum: count the mirrored bins twice ...
    if n % 2 == 0:
        weights[-1] /= 2.0  # ... but the Nyquist bin has no mirror
    spec = sp_fft.rfft(x, n=n, axis=0)
    return (weights @ (spec.real**2 + spec.imag**2)) / n


class FastSPA(SPA):
    """Hansen's SPA test with arch's numbers and a vectorised variance and bootstrap.

    Same constructor as :class:`arch.bootstrap.SPA`; with the same seed and data it draws the
    same bootstrap indices and returns the same p-values. The nested (bootstrap) variance is
    left to arch.
    """

    def _compute_variance(self) -> None:
        if self.nested:
            super()._compute_variance()
            return
        ld = self._loss_diff
        demeaned = ld - ld.mean(axis=0)
        t = self.t
        p = 1.0 / self.block_size
        lags = np.arange(t, dtype=float)
        # arch's weights: kappa_0 = 1 (the variance term) and kappa_i for lags 1..t-1.
        kappa = (1.0 - lags / t) * (1.0 - p) ** lags + (lags / t) * (1.0 - p) ** (t - lags)
        kappa[0] = 1.0
        variances = toeplitz_forms(demeaned, kappa) / t
        # The estimator is the stationary bootstrap's variance of the mean, so it is >= 0;
        # FFT rounding may leave -1e-20 for a (near-)constant column, which arch's
        # sqrt-based validity check would turn into NaN.
        self._loss_diff_var = np.maximum(variances, 0.0)

    def _simulate_values(self) -> None:
        self._compute_variance()
        self._valid_columns = self._check_column_validity()
        upper_mean = self._loss_diff.mean(0)
        consistent_mean = upper_mean.copy()
        consistent_mean[np.logical_not(self._valid_columns)] = 0.0
        lower_mean = upper_mean.copy()
        lower_mean[lower_mean < 0] = 0.0
        means = np.stack([lower_mean, consistent_mean, upper_mean], axis=1)  # k x 3

        t, reps = self.t, self.reps
        loss_diff = np.ascontiguousarray(self._loss_diff, dtype=float)
        boot_means = np.empty((reps, self.k))
        index = None
        for start in range(0, reps, _CHUNK_REPS):
            stop = min(start + _CHUNK_REPS, reps)
            flat = np.empty((stop - start, t), dtype=np.int64)
            for row in range(stop - start):
                # Same calls, in the same order, as ``self.bootstrap.bootstrap(reps)``.
                index = self.bootstrap.update_indices()
                flat[row] = index + row * t
            counts = np.bincount(flat.ravel(), minlength=(stop - start) * t)
            boot_means[start:stop] = counts.reshape(stop - start, t).astype(float) @ loss_diff
        boot_means /= t
        if index is not None:
            self.bootstrap._index = index  # arch's generator leaves the last draw in place
        self._simulated_vals = boot_means.T[:, :, None] - means[:, None, :]

    def tie_aware_pvalues(self) -> dict[str, float]:
        """Lower, consistent and upper p-values counting ties as exceedances.

        A replication counts when its maximum is at least the observed maximum mean loss
        differential minus ``1e-10 * max|loss differential|`` (rounding of the two ways of
        averaging), instead of arch's strict ``>``.

        Returns:
            ``{"lower": ..., "consistent": ..., "upper": ...}``.
        """
        if self._simulated_vals is None:
            self._simulate_values()
        assert self._simulated_vals is not None
        loss_diff = self._loss_diff[:, self._selector]
        observed = np.max(loss_diff.mean(axis=0))
        tol = _TIE_RTOL * float(np.max(np.abs(loss_diff), initial=0.0))
        simulated = np.max(self._simulated_vals[self._selector], axis=0)
        pvalues = (simulated >= observed - tol).mean(axis=0)
        return {"lower": pvalues[0], "consistent": pvalues[1], "upper": pvalues[2]}


@dataclass(frozen=True)
class SPAResult:
    """Hansen's SPA test of "no model beats the benchmark".

    Attributes:
        pvalue: The consistent p-value (re-centres only models near the benchmark).
        pvalue_lower: The lower bound (never re-centres models worse than the benchmark).
        pvalue_upper: The upper bound (re-centres every model; White's reality check).
        n_models: Number of models.
        reps: Bootstrap replications.
        block_size: Mean block length of the stationary bootstrap.
        seed: The bootstrap's seed.
    """

    pvalue: float
    pvalue_lower: float
    pvalue_upper: float
    n_models: int
    reps: int
    block_size: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-able Python numbers."""
        return {
            k: (float(v) if k.startswith("pvalue") else int(v)) for k, v in asdict(self).items()
        }


def spa_test(
    benchmark: np.ndarray,
    models: np.ndarray,
    *,
    reps: int = 1000,
    block_size: int | None = None,
    seed: int = 0,
) -> SPAResult:
    """Hansen's SPA test: can any model's returns beat the benchmark's?

    Losses are negative returns; stationary bootstrap seeded with ``seed`` (:class:`FastSPA`,
    numerically arch's ``SPA``). Note that arch uses the variance only to decide which models
    to re-centre: it does not studentize the statistic, which is the largest mean return
    difference, so models with larger volatility weigh more. Bootstrap maxima tying with the
    observed one count as exceedances (:meth:`FastSPA.tie_aware_pvalues`): a model equal to
    the benchmark, or worse by a constant, gives p = 1 where arch's strict rule gives 0.

    Args:
        benchmark: ``T`` benchmark returns.
        models: ``T x N`` model returns (duplicate columns and copies of the benchmark are fine).
        reps: Bootstrap replications (>= 1).
        block_size: Mean block length; default ``int(sqrt(T))``.
        seed: Seed of the bootstrap.

    Returns:
        The three p-values (the null "no model beats the benchmark" is rejected for small ones).

    Raises:
        ValueError: For mismatched shapes, fewer than 2 rows, non-finite values, ``reps < 1``
            or ``block_size < 1``.
    """
    b = np.asarray(benchmark, dtype=float)
    m = np.asarray(models, dtype=float)
    if b.ndim != 1 or m.ndim != 2 or m.shape[0] != b.shape[0] or m.shape[1] < 1:
        raise ValueError(
            f"need benchmark of shape (T,) and models of shape (T, N) with N >= 1; "
            f"got benchmark {b.shape} and models {m.shape}"
        )
    if b.shape[0] < 2:
        raise ValueError(f"SPA needs at least 2 rows, got {b.shape[0]}")
    if not (np.all(np.isfinite(b)) and np.all(np.isfinite(m))):
        raise ValueError("benchmark and models must be finite (found NaN or inf)")
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    size = int(np.sqrt(b.shape[0])) if block_size is None else int(block_size)
    if size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    spa = FastSPA(-b, -m, block_size=size, reps=reps, bootstrap="stationary", seed=int(seed))
    p = spa.tie_aware_pvalues()
    return SPAResult(
        pvalue=float(p["consistent"]),
        pvalue_lower=float(p["lower"]),
        pvalue_upper=float(p["upper"]),
        n_models=m.shape[1],
        reps=reps,
        block_size=size,
        seed=int(seed),
    )
