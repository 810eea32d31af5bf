"""The cost models every engine takes: flat costs, and volume-share costs with market impact.

Two models, one fill arithmetic (``fills.fill_order``, compiled with numba and called by
``run_backtest``, the sweep kernel, the portfolio engine and the simulator's ``Book``):

* :class:`FlatCosts` (``Costs`` is its historical name): a commission as a fraction of traded
  notional, and a fixed slippage in basis points of the open, against the trader.
* :class:`VolumeShareCosts`: the same commission and base slippage, plus a market-impact
  slippage that grows with the square root of participation, and a participation cap.

**Volume-share costs.** An order decided at bar t's close fills at the next open. With
``q = |Δunits|`` the units traded, ``ADV_t`` the trailing average daily volume and ``σ_t`` the
trailing volatility of daily log returns, both known at bar t's close::

    slippage fraction   s = slippage_bps / 10_000 + impact * σ_t * sqrt(q / ADV_t)
    fill price          open * (1 + s) buying, open * max(1 - s, 0) selling
    commission          commission * q * fill price
    participation cap   q <= max_participation * ADV_t

The square-root form is the "square-root law" of market impact: Almgren, Thum, Hauptmann and Li
(2005), "Direct estimation of equity market impact" (Risk 18(7)) fit the temporary impact as
``η σ (X / V T)^β`` with ``β ≈ 3/5`` and ``η ≈ 0.142``; the default ``impact = 0.142`` keeps their
coefficient with the exponent rounded to 1/2, the form LEAN's ``MarketImpactSlippageModel``
(which cites the same paper) and most practitioners use. Zipline's ``VolumeShareSlippage`` and
LEAN's ``VolumeShareSlippageModel`` cap each bar's fill at a share of volume (default 2.5%,
kept here) and carry the rest of the order to the next bar; so does this model: the order's
size is set at the base (pre-impact) price, as with flat costs, and only up to the cap fills;
the target stays in force, and at each following open the book trades towards it again (its
size recomputed from that open's equity) until it is reached or replaced.

**Causality (the documented choice).** Zipline caps by the volume of the bar being filled,
which is not known at the decision (nor at the open, where this project fills). Here both the
cap and the impact use the trailing statistics of the bars up to the decision bar's close:
``ADV_t`` is the mean volume of bars ``t - window + 1 .. t`` and ``σ_t`` the sample standard
deviation (ddof 1) of the log close-to-close returns ending at those bars. Near the start the
windows shrink to the bars available; with fewer than two returns ``σ_t = 0`` (no impact, the
cap still applies). A bar with ``ADV_t = 0`` allows no fill: the order waits.

:meth:`VolumeShareCosts.terms` turns bars into the per-bar terms the compiled fill takes:
``impact[t] = impact * σ_t / sqrt(ADV_t)`` (so that the impact fraction is
``impact[t] * sqrt(q)``) and ``cap[t] = max_participation * ADV_t``, both used by a fill at the
open after bar t. :meth:`FlatCosts.terms` gives zero impact and no cap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeAlias

import numpy as np
from numba import njit

from quant_pipelines.backtest._jit import JIT_OPTIONS


class CostTerms(NamedTuple):
    """Per-bar cost terms: entry t is used by a fill at the open after bar t's close.

    Attributes:
        impact: ``impact * σ_t / sqrt(ADV_t)``: the impact fraction is ``impact[t] * sqrt(q)``.
        cap: Most units one fill may trade (``inf``: no cap; 0: no fill).
    """

    impact: np.ndarray
    cap: np.ndarray


def _check_base(commission: float, slippage_bps: float) -> None:
    if not (math.isfinite(commission) and 0.0 <= commission < 1.0):
        raise ValueError(f"commission must be in [0, 1), got {commission!r}")
    if not (math.isfinite(slippage_bps) and 0.0 <= slippage_bps < 10_000.0):
        raise ValueError(f"slippage_bps must be in [0, 10000), got {slippage_bps!r}")


@dataclass(frozen=True)
class FlatCosts:
    """Flat trading costs: commission on notional and a fixed slippage.

    Attributes:
        commission: Commission as a fraction of traded notional (0.001 = 10 bps).
        slippage_bps: Slippage in basis points of the open price, always against the trader.
    """

    commission: float = 0.001
    slippage_bps: float = 2.0

    def __post_init__(self) -> None:
        _check_base(self.commission, self.slippage_bps)

    @property
    def slippage(self) -> float:
        """Slippage as a fraction of the price (``slippage_bps / 10_000``)."""
        return self.slippage_bps * 1e-4

    needs_volume = False
    """Whether :meth:`terms` reads the bars' volume."""

    def terms(
        self, volume: np.ndarray | None, closes: np.ndarray, *, index: Sequence[Any] | None = None
    ) -> CostTerms:
        """Zero impact and no cap on every bar (``volume`` and ``index`` are not read)."""
        n = len(closes)
        return CostTerms(np.zeros(n), np.full(n, np.inf))


Costs = FlatCosts
"""The historical name of :class:`FlatCosts` (kept so that existing code keeps working)."""


@dataclass(frozen=True)
class VolumeShareCosts:
    """Commission, base slippage, square-root market impact and a participation cap.

    See the module docstring for the formula, the causal trailing statistics and references.

    Attributes:
        commission: Commission as a fraction of traded notional.
        slippage_bps: Base slippage (half spread) in basis points of the open.
        impact: Coefficient ``k`` of the impact ``k * σ * sqrt(q / ADV)``.
        max_participation: Most units one bar's fill may trade, as a fraction of trailing ADV.
        window: Bars in the trailing ADV and volatility windows.
    """

    commission: float = 0.001
    slippage_bps: float = 2.0
    impact: float = 0.142
    max_participation: float = 0.025
    window: int = 20

    def __post_init__(self) -> None:
        _check_base(self.commission, self.slippage_bps)
        if not (math.isfinite(self.impact) and self.impact >= 0.0):
            raise ValueError(f"impact must be a finite number >= 0, got {self.impact!r}")
        if not (math.isfinite(self.max_participation) and 0.0 < self.max_participation <= 1.0):
            raise ValueError(f"max_participation must be in (0, 1], got {self.max_participation!r}")
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 2:
            raise ValueError(f"window must be an integer >= 2, got {self.window!r}")

    @property
    def slippage(self) -> float:
        """Base slippage as a fraction of the price (``slippage_bps / 10_000``)."""
        return self.slippage_bps * 1e-4

    needs_volume = True
    """Whether :meth:`terms` reads the bars' volume."""

    def terms(
        self, volume: np.ndarray | None, closes: np.ndarray, *, index: Sequence[Any] | None = None
    ) -> CostTerms:
        """Per-bar impact and cap from trailing ADV and volatility (see :class:`CostTerms`).

        Args:
            volume: Volume per bar (finite, >= 0).
            closes: Close per bar (finite, > 0).
            index: The bars' timestamps, to name a bad bar in errors (positions otherwise).

        Raises:
            ValueError: If volume is missing, of the wrong length, or holds a NaN, an infinite
                or a negative value.
        """
        if volume is None:
            raise ValueError("VolumeShareCosts need the bars' volume")
        v = np.ascontiguousarray(volume, dtype=np.float64)  # (a frame's column is strided)
        if v.shape != np.shape(closes):
            raise ValueError(f"volume has shape {v.shape}, closes {np.shape(closes)}")
        if len(v) and not (v.min() >= 0.0 and v.max() < np.inf):
            bad = int(np.flatnonzero(~(np.isfinite(v) & (v >= 0)))[0])
            where = f"bar {bad}" if index is None else str(index[bad])
            raise ValueError(f"volume must be finite and >= 0; got {v[bad]!r} at {where}")
        adv = trailing_mean(v, self.window)
        sigma = trailing_std(np.diff(np.log(np.asarray(closes, dtype=np.float64))), self.window)
        with np.errstate(divide="ignore", invalid="ignore"):
            impact = np.where(adv > 0.0, self.impact * sigma / np.sqrt(adv), 0.0)
        return CostTerms(impact, self.max_participation * adv)


CostModel: TypeAlias = FlatCosts | VolumeShareCosts
"""Any cost model the engines take."""


_RESYNC = 256
"""The rolling sums below are recomputed from scratch every this many bars (no drift)."""


@njit(**JIT_OPTIONS)
def trailing_mean(x: np.ndarray, window: int) -> np.ndarray:
    """``out[t] = mean(x[max(0, t - window + 1) : t + 1])`` (causal; shorter windows first).

    A rolling sum, recomputed exactly every :data:`_RESYNC` bars.
    """
    n = len(x)
    out = np.empty(n)
    total = 0.0
    for t in range(n):
        lo = max(0, t - window + 1)
        if t % _RESYNC == 0:
            total = 0.0
            for j in range(lo, t + 1):
                total += x[j]
        else:
            total += x[t]
            if lo > 0:
                total -= x[lo - 1]
        out[t] = total / (t + 1 - lo)
    return out


@njit(**JIT_OPTIONS)
def trailing_std(returns: np.ndarray, window: int) -> np.ndarray:
    """Sample std (ddof 1) of the ``window`` returns ending at each bar; one value per bar.

    ``returns[j - 1]`` is the return of bar j (from close j-1 to close j), so bar t's window
    is ``returns[max(0, t - window) : t]``; fewer than two returns give 0. Rolling Welford
    updates (add the new return, drop the oldest), recomputed exactly in two passes every
    :data:`_RESYNC` bars.
    """
    n = len(returns) + 1
    out = np.zeros(n)
    mean = 0.0
    m2 = 0.0
    for t in range(1, n):
        lo = max(0, t - window)
        count = t - lo
        if t % _RESYNC == 0 or t == 1:
            mean = 0.0
            for j in range(lo, t):
                mean += returns[j]
            mean /= count
            m2 = 0.0
            for j in range(lo, t):
                d = returns[j] - mean
                m2 += d * d
        else:
            x = returns[t - 1]
            if lo > 0:  # the window slides: replace the oldest return by the newest
                y = returns[lo - 1]
                old = mean
                mean += (x - y) / count
                m2 += (x - y) * (x - mean + y - old)
            else:  # the window grows
                d = x - mean
                mean += d / count
                m2 += d * (x - mean)
        if count >= 2:
            out[t] = math.sqrt(max(m2, 0.0) / (count - 1))
    return out


def cost_model(costs: object, name: str = "costs") -> CostModel:
    """Check that ``costs`` is a cost model (the engines' argument check).

    Raises:
        TypeError: For anything else.
    """
    if not isinstance(costs, FlatCosts | VolumeShareCosts):
        raise TypeError(f"{name} must be FlatCosts or VolumeShareCosts, got {type(costs).__name__}")
    return costs
