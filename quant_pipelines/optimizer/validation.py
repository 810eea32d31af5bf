"""Validation schemes inside the in-sample period: walk-forward test folds or CPCV test paths.

A trial's **validation value** is its objective averaged over the scheme's test paths, all
inside the in-sample period; the holdout (the last ``oos_fraction`` of the bars) is never
part of it. Each path is a tuple of half-open bar ranges:

* ``walk_forward``: the test windows of :func:`~quant_pipelines.backtest.make_folds` (one
  path per fold, one range each). ``scheme`` and ``purge`` shape the training windows, which
  a strategy whose parameters are the only thing chosen does not use: its test windows depend
  on ``n_folds`` and ``train_frac`` alone.
* ``cpcv``: combinatorial purged cross-validation
  (:func:`~quant_pipelines.backtest.make_cpcv_splits`): ``n_groups`` groups, every
  ``n_test_groups``-subset a split, ``k·C(N,k)/N`` paths that each cover every group once.
  Purging and embargo remove training bars next to each test range.
* ``none``: no folds; the objective is the in-sample value (``walk_forward: false``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from quant_pipelines.backtest import make_cpcv_splits, make_folds

#: Validation schemes by name.
VALIDATIONS: tuple[str, ...] = ("walk_forward", "cpcv", "none")
#: A test path: half-open bar ranges ``(lo, hi)`` in time order.
Path = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Validation:
    """How a trial is validated inside the in-sample period.

    Attributes:
        method: One of :data:`VALIDATIONS`.
        n_folds: Walk-forward test windows.
        scheme: Walk-forward training windows: "anchored" or "rolling".
        train_frac: Share of the in-sample bars before the first walk-forward test window.
        purge: Bars dropped from training before each test range.
        embargo: CPCV: bars dropped from training after each test range.
        n_groups: CPCV groups.
        n_test_groups: CPCV test groups per split.
    """

    method: str = "walk_forward"
    n_folds: int = 3
    scheme: str = "anchored"
    train_frac: float = 0.5
    purge: int = 0
    embargo: int = 0
    n_groups: int = 6
    n_test_groups: int = 2

    def __post_init__(self) -> None:
        if self.method not in VALIDATIONS:
            raise ValueError(
                f"unknown validation {self.method!r}; allowed: {', '.join(VALIDATIONS)}"
            )
        if self.scheme not in ("anchored", "rolling"):
            raise ValueError(f"scheme must be 'anchored' or 'rolling', got {self.scheme!r}")
        if self.method == "walk_forward" and self.n_folds < 1:
            raise ValueError(f"n_folds must be >= 1, got {self.n_folds}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (stored in the study document)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Validation:
        """The inverse of :meth:`to_dict` (unknown keys are ignored)."""
        known = {k: v for k, v in (data or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known)


def validation_paths(validation: Validation, n_bars: int) -> tuple[Path, ...]:
    """The test paths of ``validation`` on ``n_bars`` in-sample bars (empty for "none").

    Raises:
        ValueError: When the folds or groups do not fit in ``n_bars``.
    """
    v = validation
    if v.method == "none":
        return ()
    if v.method == "walk_forward":
        folds = make_folds(
            n_bars, n_folds=v.n_folds, scheme=v.scheme, train_frac=v.train_frac, purge=v.purge
        )
        return tuple(((f.test_start, f.test_end),) for f in folds)
    plan = make_cpcv_splits(
        n_bars,
        n_groups=v.n_groups,
        n_test_groups=v.n_test_groups,
        purge=v.purge,
        embargo=v.embargo,
    )
    return tuple(tuple((lo, hi) for lo, hi, *_ in path) for path in plan.paths)
