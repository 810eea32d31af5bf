"""Declarative parameter search spaces, convertible to Optuna distributions by the optimizer.

This module does not import Optuna. The mapping is one to one:

* :class:`IntParam` -> ``optuna.distributions.IntDistribution(low, high, step=step, log=log)``
* :class:`FloatParam` -> ``FloatDistribution(low, high, step=step, log=log)``
* :class:`CategoricalParam` -> ``CategoricalDistribution(choices)``
* :class:`Constraint` -> ``trial.set_constraint(str(c), c.violation(params))`` (Optuna 5), or
  one entry of a ``constraints_func`` vector: ``violation(params)`` is <= 0 when satisfied.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class IntParam:
    """An integer parameter in ``[low, high]`` on a ``step`` grid (log-uniform if ``log``)."""

    name: str
    low: int
    high: int
    step: int = 1
    log: bool = False

    def __post_init__(self) -> None:
        if self.low > self.high or self.step < 1 or (self.log and (self.step != 1 or self.low < 1)):
            raise ValueError(f"invalid IntParam {self}")

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a valid point of this parameter."""
        return (
            isinstance(value, int | np.integer)
            and not isinstance(value, bool)
            and self.low <= value <= self.high
            and (value - self.low) % self.step == 0
        )

    def sample(self, rng: np.random.Generator) -> int:
        """Draw a value."""
        if self.log:
            u = rng.uniform(math.log(self.low), math.log(self.high + 1))
            return int(min(self.high, math.floor(math.exp(u))))
        return int(self.low + self.step * rng.integers(0, (self.high - self.low) // self.step + 1))

    def grid(self, points: int) -> list[int]:
        """Up to ``points`` evenly spread values (all of them when there are fewer)."""
        values = list(range(self.low, self.high + 1, self.step))
        if len(values) <= points:
            return values
        if self.log:
            picks = np.round(np.geomspace(1, len(values), points)).astype(int) - 1
        else:
            picks = np.round(np.linspace(0, len(values) - 1, points)).astype(int)
        return [values[int(i)] for i in np.unique(picks)]


@dataclass(frozen=True)
class FloatParam:
    """A float parameter in ``[low, high]`` (log-uniform if ``log``, on a grid if ``step``)."""

    name: str
    low: float
    high: float
    step: float | None = None
    log: bool = False

    def __post_init__(self) -> None:
        if self.low > self.high or (self.log and (self.step is not None or self.low <= 0)):
            raise ValueError(f"invalid FloatParam {self}")

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a valid point of this parameter."""
        return isinstance(value, int | float | np.number) and self.low <= value <= self.high

    def sample(self, rng: np.random.Generator) -> float:
        """Draw a value."""
        if self.log:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        if self.step:
            k = int(rng.integers(0, round((self.high - self.low) / self.step) + 1))
            return float(self.low + k * self.step)
        return float(rng.uniform(self.low, self.high))

    def grid(self, points: int) -> list[float]:
        """``points`` evenly spread values (geometric when ``log``)."""
        space = np.geomspace if self.log else np.linspace
        return [float(v) for v in space(self.low, self.high, max(points, 1))]


@dataclass(frozen=True)
class CategoricalParam:
    """A parameter taking one of ``choices``."""

    name: str
    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.choices:
            raise ValueError(f"CategoricalParam {self.name!r} needs choices")

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one of the choices."""
        return value in self.choices

    def sample(self, rng: np.random.Generator) -> Any:
        """Draw a value."""
        return self.choices[int(rng.integers(0, len(self.choices)))]

    def grid(self, points: int) -> list[Any]:
        """All choices."""
        return list(self.choices)


Param = IntParam | FloatParam | CategoricalParam

_OPS: Mapping[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class Constraint:
    """A declarative constraint ``left op right``, e.g. ``Constraint("fast", "<", "slow")``.

    ``right`` is a parameter name or a number.
    """

    left: str
    op: str
    right: str | float

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"constraint op must be one of {sorted(_OPS)}, got {self.op!r}")

    def _values(self, params: Mapping[str, Any]) -> tuple[float, float]:
        right = params[self.right] if isinstance(self.right, str) else self.right
        return float(params[self.left]), float(right)

    def is_satisfied(self, params: Mapping[str, Any]) -> bool:
        """Whether the parameters satisfy the constraint."""
        a, b = self._values(params)
        return _OPS[self.op](a, b)

    def violation(self, params: Mapping[str, Any]) -> float:
        """Optuna-style value: <= 0 when satisfied, > 0 (the distance) when violated."""
        a, b = self._values(params)
        d = a - b if self.op in ("<", "<=") else b - a
        if _OPS[self.op](a, b):
            return min(d, 0.0)
        return d if d > 0 else 1e-9

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


@dataclass(frozen=True)
class SearchSpace:
    """Parameters plus constraints; JSON-able through :meth:`to_dict`."""

    params: tuple[Param, ...]
    constraints: tuple[Constraint, ...] = field(default=())

    @property
    def names(self) -> list[str]:
        """Parameter names, in order."""
        return [p.name for p in self.params]

    def is_feasible(self, params: Mapping[str, Any]) -> bool:
        """Whether every constraint holds."""
        return all(c.is_satisfied(params) for c in self.constraints)

    def violations(self, params: Mapping[str, Any]) -> list[float]:
        """The constraint values for Optuna's ``constraints_func`` (all <= 0 when feasible)."""
        return [c.violation(params) for c in self.constraints]

    def sample(self, n: int, *, seed: int) -> list[dict[str, Any]]:
        """Draw ``n`` feasible parameter sets (rejection sampling).

        Args:
            n: Number of sets.
            seed: Random seed.

        Returns:
            The parameter sets.

        Raises:
            RuntimeError: If feasible sets are too rare to draw.
        """
        rng = np.random.default_rng(seed)
        out: list[dict[str, Any]] = []
        for _ in range(1000 * max(n, 1)):
            if len(out) == n:
                break
            p = {q.name: q.sample(rng) for q in self.params}
            if self.is_feasible(p):
                out.append(p)
        if len(out) < n:
            raise RuntimeError(f"drew only {len(out)} of {n} feasible parameter sets")
        return out

    def grid(self, *, points: int = 5) -> list[dict[str, Any]]:
        """The feasible points of a grid with up to ``points`` values per parameter."""
        axes: Sequence[list[Any]] = [q.grid(points) for q in self.params]
        combos = (dict(zip(self.names, values, strict=True)) for values in itertools.product(*axes))
        return [p for p in combos if self.is_feasible(p)]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (for study documents)."""
        params = []
        for q in self.params:
            kind = {IntParam: "int", FloatParam: "float", CategoricalParam: "categorical"}[type(q)]
            params.append({"type": kind, **q.__dict__})
        return {"params": params, "constraints": [c.__dict__.copy() for c in self.constraints]}
