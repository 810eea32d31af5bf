"""Request and response bodies of the HTTP API (pydantic, strict).

Request models are strict and forbid unknown fields: a JSON object where a string is
expected (``{"$ne": ""}``), a string where a number is expected, or an extra key is a 422.
Every free-form string is checked by a pattern, and none may start with ``$``, so nothing
from a body can become a MongoDB operator.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

OBJECTIVES = ("sharpe", "sortino", "calmar", "total_return", "multi", "regime_robust")
SAMPLERS = ("tpe", "random", "cmaes", "gp", "qmc", "nsga2")
MAX_TRIALS = 2000
MAX_SYMBOLS = 100
MAX_SEED = 2**32 - 1

Objective = Literal["sharpe", "sortino", "calmar", "total_return", "multi", "regime_robust"]
Sampler = Literal["tpe", "random", "cmaes", "gp", "qmc", "nsga2"]

#: A strategy name: lower-case identifier.
STRATEGY_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
#: A ticker: letters and digits, then also ``. _ - /``; never a leading ``$``.
SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,31}$"
#: An analyst name.
ACTOR_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@ -]{0,63}$"
#: The Idempotency-Key header: 1 to 255 visible ASCII characters, not starting with ``$``.
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_.:+/=-][\x21-\x7e]{0,254}$"

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

StrategyName = Annotated[str, StringConstraints(strict=True, pattern=STRATEGY_PATTERN)]
SymbolName = Annotated[str, StringConstraints(strict=True, pattern=SYMBOL_PATTERN)]


def _iso_date_string(value: Any) -> Any:
    """Only a ``YYYY-MM-DD`` string is a date here (no numbers, no datetimes)."""
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ValueError("expected a date string 'YYYY-MM-DD'")
    return value


#: A calendar date given as ``"YYYY-MM-DD"``.
IsoDate = Annotated[dt.date, BeforeValidator(_iso_date_string), Field(strict=False)]


def _free_text(value: str) -> str:
    if value.startswith("$"):
        raise ValueError("must not start with '$'")
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class WalkForwardConfig(_Strict):
    """Walk-forward folds, used as the pruning steps of each trial.

    The first ``train_frac`` of the bars is the first training window; the rest is cut into
    ``n_folds`` test windows. Anchored training windows start at the first bar; rolling ones
    keep the first window's length. ``purge`` bars between train and test are dropped.
    """

    n_folds: int = Field(4, ge=2, le=20, description="Number of out-of-sample test windows.")
    scheme: Literal["anchored", "rolling"] = "anchored"
    train_frac: float = Field(0.5, gt=0.05, lt=0.95, description="Share of the first window.")
    purge: int = Field(0, ge=0, le=1000, description="Bars dropped between train and test.")


class CPCVConfig(_Strict):
    """Combinatorial purged cross-validation inside the in-sample period (``docs/overfitting.md``).

    The in-sample bars are cut into ``n_groups`` groups; every ``n_test_groups``-subset is one
    split's test set; ``purge`` bars before and ``embargo`` bars after each test range are
    dropped from training. The objective is the mean over the test paths.
    """

    n_groups: int = Field(6, ge=3, le=16, description="Groups of the in-sample period.")
    n_test_groups: int = Field(2, ge=1, le=8, description="Test groups per split.")
    purge: int = Field(0, ge=0, le=1000, description="Training bars dropped before a test.")
    embargo: int = Field(0, ge=0, le=1000, description="Training bars dropped after a test.")


Validation = Literal["walk_forward", "cpcv"]
RankBy = Literal["validation", "deflated_sharpe", "in_sample", "holdout"]


class OptimizeRequest(_Strict):
    """``POST /backtests/optimize``: one Optuna study over a strategy's search space."""

    strategy: StrategyName = Field(
        description="A registered strategy, e.g. 'sma_crossover', or a portfolio strategy, "
        "e.g. 'xs_momentum' (the study is then a portfolio study)."
    )
    symbols: list[SymbolName] = Field(
        default_factory=list,
        max_length=MAX_SYMBOLS,
        description="Symbols of the universe (at least one, unless 'universe' is given).",
    )
    portfolio: bool = Field(
        False,
        description="Book every symbol as one portfolio and optimize the portfolio's metric. "
        "A single-asset strategy then means 'signal_<strategy>' (its targets on every symbol, "
        "sized by an allocator). Implied by a portfolio strategy's name.",
    )
    universe: Literal["equity", "fx", "crypto"] | None = Field(
        None,
        description="Instead of 'symbols': every symbol of this asset class of the universe.",
    )
    start: IsoDate = Field(description="First day of the data, 'YYYY-MM-DD' (inclusive).")
    end: IsoDate = Field(description="Last day of the data, 'YYYY-MM-DD' (after start).")
    n_trials: int = Field(100, ge=1, le=MAX_TRIALS, description="Trials to run.")
    objective: Objective = "sharpe"
    sampler: Sampler = "tpe"
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of the sampler.")
    walk_forward: bool | WalkForwardConfig | None = Field(
        None,
        description="Walk-forward validation folds inside the in-sample period. Omitted or "
        "true: default folds; an object: these folds; false: no folds (trials are then "
        "ranked in sample).",
    )
    validation: Validation | None = Field(
        None,
        description="'walk_forward' (default unless walk_forward is false) or 'cpcv'.",
    )
    cpcv: CPCVConfig | None = Field(None, description="CPCV options (validation 'cpcv').")
    urgent: bool = Field(False, description="Run now even during market hours.")

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, end: dt.date, info: ValidationInfo) -> dt.date:
        start = info.data.get("start")
        if start is not None and not start < end:
            raise ValueError(f"end ({end}) must be after start ({start})")
        return end

    @model_validator(mode="after")
    def _symbols_or_universe(self) -> OptimizeRequest:
        if self.universe is None and not self.symbols:
            raise ValueError("give 'symbols' (at least one) or a 'universe' (an asset class)")
        if self.universe is not None and self.symbols:
            raise ValueError("give 'symbols' or a 'universe', not both")
        return self

    def walk_forward_config(self) -> WalkForwardConfig | None:
        """The folds to use, or None for no folds (``walk_forward: false``)."""
        if isinstance(self.walk_forward, WalkForwardConfig):
            return self.walk_forward
        return None if self.walk_forward is False else WalkForwardConfig()

    def validation_method(self) -> str:
        """ "walk_forward", "cpcv" or "none"."""
        if self.validation is not None:
            return self.validation
        return "none" if self.walk_forward is False else "walk_forward"


class OptimizeAccepted(BaseModel):
    """The 202 answer: where to follow the request."""

    request_id: str
    status_url: str
    status: str


class AlertAction(_Strict):
    """Optional body of ``POST /alerts/{id}/ack|resolve|false-positive``."""

    note: Annotated[str, Field(max_length=2000), AfterValidator(_free_text)] | None = None
    actor: Annotated[
        Annotated[str, StringConstraints(strict=True, pattern=ACTOR_PATTERN)] | None,
        Field(
            deprecated=True,
            description="Ignored (kept for compatibility): the actor recorded is the API key's "
            "name.",
        ),
    ] = None


class Progress(BaseModel):
    """How far a study has got."""

    done: int = 0
    total: int | None = None
    best_value: float | list[float] | None = None
    best_params: dict[str, Any] | None = None
    trials_per_hour: float | None = None
    eta_s: float | None = None


class OptimizeStatus(BaseModel):
    """``GET /backtests/optimize/{request_id}``."""

    request_id: str
    status: Literal["queued", "deferred", "launched", "running", "succeeded", "failed", "canceled"]
    urgent: bool
    params: dict[str, Any]
    asset_classes: list[str] = []
    study_name: str
    study_status: str | None = None
    run_id: str | None = None
    progress: Progress
    top_trials: list[dict[str, Any]]
    error: str | None = None
    deferred_until: dt.datetime | None = None
    created_at: dt.datetime
    updated_at: dt.datetime
    launched_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None


class LeaderboardRow(BaseModel):
    """One leaderboard row: a trial, ranked within its objective (``docs/overfitting.md``)."""

    objective_name: str | None
    rank: int
    study: str
    trial: int
    strategy: str | None = None
    asset_class: str | None = None
    portfolio: bool = False
    symbols: list[str] = []
    params: str
    param_values: dict[str, Any]
    in_sample: float | None
    validation: float | None
    holdout: float | None
    rank_value: float
    holdout_sharpe: float | None
    buy_hold_sharpe: float | None
    deflated_sharpe: float | None
    pbo: float | None
    spa_pvalue: float | None
    max_drawdown: float | None
    n_trades: float | None
    selected: bool
    promoted: bool
    reason: str
    cluster_size: int
    rank_by: str
    selection_on_holdout: bool


class Leaderboard(BaseModel):
    """``GET /backtests/leaderboard``."""

    objective: str | None
    rank_by: str
    strategy: str | None
    asset_class: str | None
    limit: int
    entries: list[LeaderboardRow]


class AlertList(BaseModel):
    """``GET /alerts``."""

    count: int
    alerts: list[dict[str, Any]]


class Health(BaseModel):
    """``GET /healthz``."""

    status: Literal["ok", "unavailable"]
    mongodb: str
    detail: str | None = None
