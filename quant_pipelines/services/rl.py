"""RL use cases: train one symbol's policy under guardrails, and replay its latest policy;
the same for a portfolio policy over a universe (:func:`train_portfolio_policy`,
:func:`replay_portfolio_policy`).

:func:`train_policy` trains on the bars before a held-out window and stores the policy signed,
with the data it was trained on (symbol, asset class, training range, holdout start) inside the
signed metadata. :func:`replay_policy` loads the newest policy of a symbol (refusing one whose
signature fails or whose signed symbol differs), replays it deterministically on the held-out
bars read from the *signed* holdout start, records the replay on the policy and as KPIs, and
compares it with the best promoted strategy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from quant_pipelines._utils.time import utc_timestamp
from quant_pipelines.backtest import (
    BacktestResult,
    get_strategy,
    metrics_by_regime,
    plot_equity,
    run_backtest,
)
from quant_pipelines.backtest.portfolio import PortfolioResult
from quant_pipelines.backtest.portfolio.strategies import PORTFOLIO_STRATEGIES
from quant_pipelines.rl import Guardrails, RLEngine
from quant_pipelines.rl._portfolio import portfolio_spec, replay_portfolio
from quant_pipelines.rl._portfolio_report import comparison_table, plot_comparison, strategy_replay
from quant_pipelines.rl._portfolio_train import train_portfolio
from quant_pipelines.rl.training_data import (
    TrainingData,
    attach_training_data,
    signed_training_data,
    training_windows,
)
from quant_pipelines.services.leaderboard import promoted_strategies
from quant_pipelines.settings import load_settings
from quant_pipelines.signals import regimes
from quant_pipelines.storage import GridFSPolicyStore
from quant_pipelines.storage.kpis import upsert_kpi
from quant_pipelines.storage.repositories import Repositories

MIN_TRAINING_BARS = 200
MIN_HELD_OUT_BARS = 10
#: Days of bars before the holdout start that only warm up the replay's features.
WARMUP_DAYS = 90


class InsufficientBarsError(ValueError):
    """Too few bars to train on or to replay."""


@dataclass(frozen=True)
class TrainingReport:
    """What :func:`train_policy` returns.

    Attributes:
        policy_id: The stored policy's id.
        sha256: SHA-256 of its weights.
        algo: The algorithm.
        timesteps: The model's timestep counter.
        train_bars: Bars trained on (validation included).
        train_start: First training bar.
        train_end: Last training bar.
        holdout_start: Start of the held-out window (signed with the policy).
        seconds: Training wall-clock seconds.
        stop_reason: Why training stopped (``completed``, early stop, guardrail ...).
        best_eval_reward: Best validation reward, when evaluated.
    """

    policy_id: str
    sha256: str
    algo: str
    timesteps: int
    train_bars: int
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    holdout_start: pd.Timestamp
    seconds: float
    stop_reason: str
    best_eval_reward: float | None


@dataclass(frozen=True)
class ReplayReport:
    """What :func:`replay_policy` returns.

    Attributes:
        policy_id: The replayed policy.
        holdout_start: Where the held-out window starts.
        holdout_signed: Whether ``holdout_start`` is signed (False only for a policy stored
            before it was: its descriptive field is used).
        held_out_start: First replayed bar.
        held_out_end: Last replayed bar.
        result: The backtest of the policy's positions over the held-out bars.
        drawdown_limit: The policy's signed drawdown limit (else the default).
        drawdown_compliant: ``|max_drawdown| <= drawdown_limit``.
        episode_length_mean: Mean length of seeded random-start episodes.
        episode_length_std: Their standard deviation.
        sharpe_change_vs_previous: Sharpe minus the previous replayed version's, if any.
        by_regime: Metrics per market regime (``metrics_by_regime``), one row per regime.
        equity_png: The equity curve as PNG bytes.
        best_strategy: ``"<study> #<trial>"`` of the best promoted strategy, if any.
        best_strategy_sharpe: Its Sharpe on the same held-out bars, if any.
    """

    policy_id: str
    holdout_start: pd.Timestamp
    holdout_signed: bool
    held_out_start: pd.Timestamp
    held_out_end: pd.Timestamp
    result: BacktestResult
    drawdown_limit: float
    drawdown_compliant: bool
    episode_length_mean: float
    episode_length_std: float
    sharpe_change_vs_previous: float | None
    by_regime: pd.DataFrame
    equity_png: bytes
    best_strategy: str | None
    best_strategy_sharpe: float | None


def train_policy(
    repos: Repositories,
    symbol: str,
    *,
    asset_class: str,
    signing_key: bytes,
    run_id: str,
    algo: str = "ppo",
    total_timesteps: int = 20_000,
    seed: int = 0,
    lookback_days: int = 730,
    holdout_days: int = 120,
    wall_clock_seconds: float = 900.0,
    max_drawdown: float = 0.35,
    workdir: Path | None = None,
    now: pd.Timestamp | None = None,
) -> TrainingReport:
    """Trains one symbol's policy on the bars before its held-out window and stores it signed.

    Args:
        repos: The project repositories.
        symbol: The instrument the policy trades.
        asset_class: Its asset class.
        signing_key: The policy signing key (never from the database).
        run_id: Id of the run (the policy id and run directory carry its first 8 characters).
        algo: SB3 algorithm; ``total_timesteps`` and ``seed`` its budget and seed.
        lookback_days: Days of training bars before the holdout start.
        holdout_days: Days held out for the replay, ending tomorrow (UTC).
        wall_clock_seconds: Guardrail on training time; ``max_drawdown`` on drawdown.
        workdir: Parent of run directories (default ``$DAGSTER_HOME/rl/runs``).
        now: The clock (default: now).

    Returns:
        The training report.

    Raises:
        InsufficientBarsError: With fewer than :data:`MIN_TRAINING_BARS` bars before holdout.
    """
    start, holdout = training_windows(
        now or pd.Timestamp.now(tz="UTC"), lookback_days=lookback_days, holdout_days=holdout_days
    )
    bars = repos.bars.read(symbol, start, holdout)
    if len(bars) < MIN_TRAINING_BARS:
        raise InsufficientBarsError(
            f"{len(bars)} bars of {symbol} before {holdout.date()}: need >= "
            f"{MIN_TRAINING_BARS}; materialize market_bars/{asset_class} first"
        )
    run_dir = (workdir or load_settings().dagster_home / "rl" / "runs") / f"{symbol}-{run_id[:8]}"
    engine = RLEngine(store=GridFSPolicyStore(repos.db), workdir=run_dir, signing_key=signing_key)
    guardrails = Guardrails(
        max_timesteps=max(total_timesteps, 1),
        wall_clock_seconds=wall_clock_seconds,
        max_drawdown=max_drawdown,
    )
    policy = engine.train(
        bars,
        algo=algo,
        total_timesteps=total_timesteps,
        seed=seed,
        guardrails=guardrails,
        run_dir=run_dir,
        save=False,
    )
    policy.policy_id = f"{symbol}-{algo}-s{seed}-{run_id[:8]}"
    data = TrainingData(symbol, asset_class, bars.index[0], bars.index[-1], holdout)
    attach_training_data(policy, data)  # signed with the policy: the replay trusts only this
    policy_id = engine.save(policy)
    train = {"start": str(data.train_start), "end": str(data.train_end)}
    engine.store.record_metrics(
        policy_id,
        symbol=symbol,
        asset_class=asset_class,
        train_period=train,
        holdout_start=holdout.to_pydatetime(),
        run_id=run_id,
    )
    metrics = policy.metrics
    best = metrics.get("best_eval_reward")
    return TrainingReport(
        policy_id=policy_id,
        sha256=policy.sha256 or "",
        algo=algo,
        timesteps=int(policy.num_timesteps or 0),
        train_bars=len(bars),
        train_start=bars.index[0],
        train_end=bars.index[-1],
        holdout_start=holdout,
        seconds=float(metrics.get("wall_seconds") or 0.0),
        stop_reason=str(metrics.get("stop_reason", "completed")),
        best_eval_reward=None if best is None else float(best),
    )


def replay_policy(
    repos: Repositories,
    symbol: str,
    *,
    asset_class: str,
    signing_key: bytes,
    default_max_drawdown: float = 0.35,
    n_episodes: int = 8,
) -> ReplayReport:
    """Replays the newest policy of ``symbol`` on its held-out bars and records the outcome.

    The holdout start, symbol and asset class come from the policy's signed metadata; the
    descriptive copies in ``rl_policies`` only pick which policy is newest (a policy stored
    before they were signed falls back to its descriptive ``holdout_start``).

    Args:
        repos: The project repositories.
        symbol: The instrument.
        asset_class: Its asset class (the signed one wins when present).
        signing_key: The policy signing key.
        default_max_drawdown: Drawdown limit of a policy that has none signed.
        n_episodes: Seeded random-start episodes of the stability statistics.

    Returns:
        The replay report (also stored as the policy's ``replay`` field and ``rl.*`` KPIs).

    Raises:
        LookupError: If ``symbol`` has no policy.
        PolicyIntegrityError: On a bad signature, or a policy signed for another symbol.
        InsufficientBarsError: With fewer than :data:`MIN_HELD_OUT_BARS` held-out bars.
    """
    store = GridFSPolicyStore(repos.db)
    versions = store.latest(symbol=symbol)
    if not versions:
        raise LookupError(f"no RL policy for {symbol}; materialize rl_policy first")
    current = versions[0]  # the newest: descriptive fields choose it, the signed ones are used
    engine = RLEngine(store=store, signing_key=signing_key)
    policy = engine.load(current["policy_id"])  # refuses a policy whose signature fails
    signed = signed_training_data(policy, symbol=symbol)
    holdout = signed.holdout_start if signed else utc_timestamp(current["holdout_start"])
    asset_class = signed.asset_class if signed else asset_class
    bars = repos.bars.read(symbol, holdout - pd.Timedelta(days=WARMUP_DAYS), None)
    held_out = bars[bars.index >= holdout]
    if len(held_out) < MIN_HELD_OUT_BARS:
        raise InsufficientBarsError(f"only {len(held_out)} held-out bars of {symbol}")
    first = held_out.index[0]
    result = engine.replay(policy, bars, start=first, asset_class=asset_class)
    episodes = engine.evaluate_episodes(policy, bars, n_episodes=n_episodes, seed=0, start=first)
    m = result.metrics
    limit = float((policy.guardrails or {}).get("max_drawdown") or default_max_drawdown)
    previous = store.previous_replay(symbol, before=current["policy_id"])
    best_name, best_sharpe = _best_strategy(repos, symbol, held_out, asset_class)
    report = ReplayReport(
        policy_id=current["policy_id"],
        holdout_start=holdout,
        holdout_signed=signed is not None,
        held_out_start=first,
        held_out_end=held_out.index[-1],
        result=result,
        drawdown_limit=limit,
        drawdown_compliant=abs(float(m["max_drawdown"])) <= limit,
        episode_length_mean=float(episodes["ep_len_mean"]),
        episode_length_std=float(episodes["ep_len_std"]),
        sharpe_change_vs_previous=(
            float(m["sharpe"]) - float(previous["sharpe"]) if previous else None
        ),
        # Labels come from all bars (the warm-up included, they are causal), cut to the replay.
        by_regime=metrics_by_regime(
            result, regimes(bars)["label"].reindex(result.equity.index)
        ).reset_index(),
        equity_png=plot_equity(result),
        best_strategy=best_name,
        best_strategy_sharpe=best_sharpe,
    )
    _record(repos, store, symbol, report)
    return report


def _best_strategy(
    repos: Repositories, symbol: str, bars: pd.DataFrame, asset_class: str
) -> tuple[str | None, float | None]:
    """The best promoted trial whose study covered ``symbol``, replayed on ``bars``."""
    for row in promoted_strategies(repos.db, asset_class=asset_class, symbol=symbol):
        if row.get("portfolio"):  # a portfolio strategy trades the universe, not one symbol
            continue
        positions = get_strategy(row["strategy"]).positions(bars, **row["params"])
        result = run_backtest(bars, positions, asset_class=asset_class)
        return f"{row['study']} #{row['trial']}", float(result.metrics["sharpe"])
    return None, None


def _record(
    repos: Repositories, store: GridFSPolicyStore, symbol: str, report: ReplayReport
) -> None:
    """Stores the replay on the policy record and as ``rl.<name>.<symbol>`` KPIs."""
    m = report.result.metrics
    replay_doc = {
        "sharpe": float(m["sharpe"]),
        "max_drawdown": float(m["max_drawdown"]),
        "total_return": float(m["total_return"]),
        "buy_and_hold_return": float(m["buy_and_hold_return"]),
        "drawdown_limit": report.drawdown_limit,
        "drawdown_compliant": report.drawdown_compliant,
        "episode_length_mean": report.episode_length_mean,
        "episode_length_std": report.episode_length_std,
        "sharpe_change_vs_previous": report.sharpe_change_vs_previous,
        "held_out": {"start": str(report.held_out_start), "end": str(report.held_out_end)},
        "holdout_signed": report.holdout_signed,
    }
    store.record_metrics(report.policy_id, replay=replay_doc)
    kpis = {
        "policy_sharpe": replay_doc["sharpe"],
        "policy_max_drawdown": replay_doc["max_drawdown"],
        "drawdown_compliance": 1.0 if report.drawdown_compliant else 0.0,
        "episode_length_mean": report.episode_length_mean,
        "episode_length_std": report.episode_length_std,
        "policy_sharpe_change": report.sharpe_change_vs_previous,
    }
    period = str(report.held_out_end.date())
    for name, value in kpis.items():
        upsert_kpi(
            repos.db,
            f"rl.{name}.{symbol}",
            period,
            value,
            details={"policy_id": report.policy_id},
            source="rl_policy_replay",
        )


# -- portfolio policies ------------------------------------------------------------------------

#: Key of the signed training record of a portfolio policy (in its ``metrics``).
PORTFOLIO_TRAINING = "portfolio_training"


@dataclass(frozen=True)
class PortfolioTrainingReport:
    """What :func:`train_portfolio_policy` returns: the policy, its universe and windows."""

    policy_id: str
    sha256: str
    symbols: tuple[str, ...]
    timesteps: int
    holdout_start: pd.Timestamp
    seconds: float
    stop_reason: str


@dataclass(frozen=True)
class PortfolioReplayReport:
    """What :func:`replay_portfolio_policy` returns.

    Attributes:
        policy_id: The replayed policy.
        symbols: Its universe.
        result: The portfolio engine's book of its held-out weights.
        compared_with: ``"<study> #<trial> (<strategy>)"`` of the best promoted portfolio
            strategy on the same universe, or ``"equal-weight benchmark"`` when none is.
        strategy_promoted: Whether a promoted strategy was found.
        table: Metrics per book (``rl._portfolio_report.comparison_table``).
        equity_png: Equity curves of the books.
        env_gap: Largest simulator-vs-engine equity difference of the replay.
    """

    policy_id: str
    symbols: tuple[str, ...]
    result: PortfolioResult
    compared_with: str
    strategy_promoted: bool
    table: pd.DataFrame
    equity_png: bytes
    env_gap: float


def _read_universe(
    repos: Repositories, symbols: Sequence[str], start: pd.Timestamp, end: pd.Timestamp | None
) -> dict[str, pd.DataFrame]:
    bars = {s: repos.bars.read(s, start, end) for s in symbols}
    short = [s for s, b in bars.items() if len(b) < MIN_HELD_OUT_BARS]
    if short:
        raise InsufficientBarsError(f"no bars of {short} from {start.date()}; ingest them first")
    return bars


def train_portfolio_policy(
    repos: Repositories,
    symbols: Sequence[str],
    *,
    asset_class: str,
    signing_key: bytes,
    run_id: str,
    algo: str = "ppo",
    total_timesteps: int = 20_000,
    seed: int = 0,
    lookback_days: int = 730,
    holdout_days: int = 120,
    wall_clock_seconds: float = 900.0,
    max_drawdown: float = 0.35,
    workdir: Path | None = None,
    now: pd.Timestamp | None = None,
) -> PortfolioTrainingReport:
    """Trains a portfolio policy over ``symbols`` before the held-out window; stores it signed.

    Raises:
        ValueError: With fewer than 2 symbols.
        InsufficientBarsError: With too few bars of a symbol.
    """
    if len(symbols) < 2:
        raise ValueError(f"a portfolio policy needs at least 2 symbols; got {list(symbols)}")
    start, holdout = training_windows(
        now or pd.Timestamp.now(tz="UTC"), lookback_days=lookback_days, holdout_days=holdout_days
    )
    bars = _read_universe(repos, symbols, start, holdout)
    run_dir = (workdir or load_settings().dagster_home / "rl" / "runs") / f"pf-{run_id[:8]}"
    policy = train_portfolio(
        bars,
        total_timesteps=total_timesteps,
        seed=seed,
        algo=algo,
        guardrails=Guardrails(
            max_timesteps=max(total_timesteps, 1),
            wall_clock_seconds=wall_clock_seconds,
            max_drawdown=max_drawdown,
        ),
        run_dir=run_dir,
    )
    policy.policy_id = f"portfolio-{asset_class}-{algo}-s{seed}-{run_id[:8]}"
    policy.metrics[PORTFOLIO_TRAINING] = {  # signed with the policy: the replay trusts this
        "asset_class": asset_class,
        "holdout_start": holdout.isoformat(),
    }
    engine = RLEngine(store=GridFSPolicyStore(repos.db), signing_key=signing_key)
    policy_id = engine.save(policy)
    engine.store.record_metrics(
        policy_id,
        kind="portfolio",
        universe=list(symbols),
        asset_class=asset_class,
        holdout_start=holdout.to_pydatetime(),
        run_id=run_id,
    )
    m = policy.metrics
    return PortfolioTrainingReport(
        policy_id=policy_id,
        sha256=policy.sha256 or "",
        symbols=tuple(symbols),
        timesteps=int(policy.num_timesteps),
        holdout_start=holdout,
        seconds=float(m.get("wall_seconds") or 0.0),
        stop_reason=str(m.get("stop_reason", "completed")),
    )


def replay_portfolio_policy(
    repos: Repositories, *, asset_class: str, signing_key: bytes
) -> PortfolioReplayReport:
    """Replays the newest portfolio policy of ``asset_class`` on its held-out bars through the
    portfolio engine, against the best promoted portfolio strategy on the same universe (or the
    equal-weight benchmark when none is promoted), and records the replay on the policy.

    Raises:
        LookupError: If the asset class has no portfolio policy.
        PolicyIntegrityError / PolicyFormatError: On a bad signature or not a portfolio policy.
        InsufficientBarsError: With too few held-out bars.
    """
    store = GridFSPolicyStore(repos.db)
    versions = store.latest(kind="portfolio", asset_class=asset_class)
    if not versions:
        raise LookupError(f"no portfolio policy of {asset_class}; materialize rl_portfolio_policy")
    engine = RLEngine(store=store, signing_key=signing_key)
    policy = engine.load(versions[0]["policy_id"])  # refuses a policy whose signature fails
    symbols = portfolio_spec(policy).symbols
    signed = policy.metrics.get(PORTFOLIO_TRAINING) or {}
    holdout = utc_timestamp(signed.get("holdout_start") or versions[0]["holdout_start"])
    history = _read_universe(repos, symbols, holdout - pd.Timedelta(days=3 * 365), None)
    replay = replay_portfolio(policy, history, start=holdout, asset_class=asset_class)
    costs = replay.result.costs[symbols[0]]
    other, name = None, "equal-weight benchmark"
    for row in promoted_strategies(repos.db, asset_class=asset_class):
        if (row.get("portfolio") or row["strategy"] in PORTFOLIO_STRATEGIES) and set(
            row["symbols"]
        ) == set(symbols):
            params = row.get("best_params") or row.get("params") or {}
            other = strategy_replay(
                row["strategy"], params, history, start=holdout, costs=costs,
                asset_class=asset_class,
            )  # fmt: skip
            name = f"{row['study']} #{row['trial']} ({row['strategy']})"
            break
    table = comparison_table(replay.result, other, name)
    report = PortfolioReplayReport(
        policy_id=policy.policy_id or "",
        symbols=symbols,
        result=replay.result,
        compared_with=name,
        strategy_promoted=other is not None,
        table=table,
        equity_png=plot_comparison(replay.result, other, name),
        env_gap=replay.env_gap,
    )
    m = replay.result.metrics
    limit = float(policy.env_config.get("max_drawdown") or 1.0)
    store.record_metrics(  # read by the KPI report with the single-asset replays
        report.policy_id,
        replay={
            **{k: float(m[k]) for k in ("sharpe", "max_drawdown", "total_return")},
            "drawdown_limit": limit,
            "drawdown_compliant": abs(float(m["max_drawdown"])) <= limit,
            "compared_with": name,
            "held_out": {
                "start": str(replay.result.equity.index[0]),
                "end": str(replay.result.equity.index[-1]),
            },
        },
    )
    return report
