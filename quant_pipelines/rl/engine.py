"""``RLEngine``: train SB3 policies on the simulator and replay them through the backtester."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
from stable_baselines3.common.callbacks import BaseCallback

from quant_pipelines.backtest import BacktestResult, Costs, run_backtest
from quant_pipelines.rl._algos import algo_class, merged_hyperparams
from quant_pipelines.rl._envs import env_config
from quant_pipelines.rl._replay import episode_stats, policy_positions
from quant_pipelines.rl._training import RunSpec, run_training
from quant_pipelines.rl.artifact import PolicyArtifact, pack_policy, verify_and_load
from quant_pipelines.rl.guardrails import Guardrails, preflight
from quant_pipelines.rl.hashing import PolicyIntegrityError, check_policy_id
from quant_pipelines.rl.policy import TrainedPolicy


class PolicyStore(Protocol):
    """What ``RLEngine`` needs from a policy store (duck-typed; e.g. a GridFS repository).

    ``save_policy`` receives a :class:`PolicyArtifact` (safetensors weights, canonical JSON
    metadata, HMAC signature) and the descriptive :meth:`TrainedPolicy.meta`, and returns the
    artifact's ``policy_id``. ``load_policy`` returns an object with the artifact's four
    attributes (``policy_id``, ``weights``, ``spec``, ``signature``); the engine verifies the
    signature with its own key before anything is parsed. Stores keep bytes in memory: nothing
    is written to disk under a name taken from the database.
    """

    def save_policy(self, artifact: PolicyArtifact, meta: dict[str, Any]) -> str: ...

    def load_policy(self, policy_id: str) -> Any: ...


class RLEngine:
    """Trains, replays and (optionally) persists RL trading policies.

    Args:
        store: Optional :class:`PolicyStore`; without it the engine works on local files only.
        workdir: Parent directory of training runs (checkpoints, best and final models); a
            ``quant_pipelines_rl`` folder in the system temp dir when None.
        verbose: SB3 verbosity.
        signing_key: HMAC key that signs stored policies and verifies loaded ones (at least 32
            bytes); needed to save to or load from a store. It must not come from the policy
            database: ``storage._signing_key.policy_signing_key()`` reads the environment or
            an owner-only file under ``DAGSTER_HOME``.
    """

    def __init__(
        self,
        *,
        store: PolicyStore | None = None,
        workdir: str | Path | None = None,
        verbose: int = 0,
        signing_key: bytes | None = None,
    ) -> None:
        self.store = store
        self.signing_key = signing_key
        self.workdir = (
            Path(workdir) if workdir else Path(tempfile.gettempdir()) / "quant_pipelines_rl"
        )
        self.verbose = verbose

    def train(
        self,
        bars: pd.DataFrame,
        *,
        algo: str,
        total_timesteps: int,
        seed: int,
        hyperparams: Mapping[str, Any] | None = None,
        guardrails: Guardrails | None = None,
        action_space: str = "discrete",
        costs: Costs | None = None,
        env_options: Mapping[str, Any] | None = None,
        validation_fraction: float = 0.2,
        eval_freq: int | None = None,
        patience: int = 5,
        min_evals: int = 3,
        checkpoint_freq: int | None = None,
        n_envs: int = 1,
        vec_env: str = "dummy",
        normalize: bool = False,
        resume_from: TrainedPolicy | str | Path | None = None,
        run_dir: str | Path | None = None,
        callbacks: Sequence[BaseCallback] = (),
        save: bool = True,
    ) -> TrainedPolicy:
        """Train a policy on the first part of ``bars``, validating on the rest.

        Training episodes start at seeded random bars of the training range (``episode_length``
        steps, 256 by default); EvalCallback runs the deterministic policy over the validation
        range every ``eval_freq`` steps and stops after ``patience`` evaluations without a new
        best. CheckpointCallback saves every ``checkpoint_freq`` steps.

        Args:
            bars: Bars in the project's schema.
            algo: "ppo", "a2c", "dqn" (discrete only) or "sac" (continuous only).
            total_timesteps: Env steps to train (more steps on top when resuming).
            seed: Seed of the networks, the envs' random starts and exploration.
            hyperparams: SB3 keyword arguments overriding the defaults of ``_algos``.
            guardrails: Resource limits; ``Guardrails()`` when None.
            action_space: "discrete" or "continuous".
            costs: Trading costs; ``Costs()`` when None.
            env_options: Simulator options: observation, reward, drawdown_penalty, sharpe_eta,
                reward_clip, initial_equity, episode_length.
            validation_fraction: Trailing fraction of bars used for evaluation (0: none).
            eval_freq: Steps between evaluations; ``total_timesteps // 10`` when None.
            patience: Evaluations without improvement before stopping early.
            min_evals: Evaluations before early stopping may trigger.
            checkpoint_freq: Steps between checkpoints; ``total_timesteps // 4`` when None.
            n_envs: Parallel training envs (at most ``guardrails.max_envs``).
            vec_env: "dummy", "subproc" or "batched" (one ``VecTradingSimulator``).
            normalize: Wrap the envs in VecNormalize (its statistics are kept with the policy).
            resume_from: A policy or a checkpoint zip to continue; ``num_timesteps`` carries on.
            run_dir: Run directory; a fresh one under ``workdir`` when None.
            callbacks: Extra SB3 callbacks (run before the guardrail callbacks).
            save: With a store, save the final policy to it.

        Returns:
            The :class:`TrainedPolicy` (final model; ``best_model_path`` points to the best).

        Raises:
            ValueError: On an unknown algo or an algo/action-space mismatch, bad options.
            GuardrailError: When the request breaks a limit.
            TrainingDivergedError: On NaN/inf losses, parameters, observations or rewards.
        """
        g = guardrails if guardrails is not None else Guardrails()
        if isinstance(resume_from, TrainedPolicy):
            if resume_from.algo != algo.lower():
                raise ValueError(f"cannot resume a {resume_from.algo} policy with algo={algo!r}")
            action_space = resume_from.action_space
        algo_class(algo, action_space)
        preflight(g, total_timesteps=total_timesteps, n_envs=n_envs)
        if not 0.0 <= validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
        if isinstance(resume_from, TrainedPolicy):
            config = dict(resume_from.env_config)
        else:
            config = env_config(
                action_space=action_space,
                costs=costs,
                max_drawdown=g.max_drawdown,
                options=env_options,
            )
        n = len(bars)
        split = n - round(n * validation_fraction)
        if split < 2:
            raise ValueError(f"only {split} training bars; need more bars or less validation")
        if run_dir is None:
            self.workdir.mkdir(parents=True, exist_ok=True)
            run_dir = tempfile.mkdtemp(prefix=f"{algo.lower()}-seed{seed}-", dir=self.workdir)
        spec = RunSpec(
            bars=bars,
            algo=algo.lower(),
            total_timesteps=int(total_timesteps),
            seed=int(seed),
            guardrails=g,
            config=config,
            hyperparams=merged_hyperparams(algo, hyperparams),
            run_dir=Path(run_dir),
            split=split,
            eval_freq=eval_freq or max(total_timesteps // 10, 1),
            patience=patience,
            min_evals=min_evals,
            checkpoint_freq=checkpoint_freq or max(total_timesteps // 4, 1),
            n_envs=n_envs,
            vec_env=vec_env,
            normalize=normalize,
            resume=resume_from,
            callbacks=tuple(callbacks),
            verbose=self.verbose,
        )
        policy = run_training(spec)
        if save and self.store is not None:
            self.save(policy)
        return policy

    def replay(
        self,
        policy: TrainedPolicy,
        bars: pd.DataFrame,
        *,
        start: int | str | pd.Timestamp | None = None,
        enforce_drawdown: bool = True,
        periods_per_year: float | None = None,
        asset_class: str | None = None,
    ) -> BacktestResult:
        """Replay a policy deterministically and score it with ``run_backtest``.

        The simulator walks the bars from ``start`` (earlier bars only warm up the features),
        ``predict(deterministic=True)`` picks each action, its target exposure becomes
        ``positions[t]``, and the positions are backtested on ``bars`` from ``start`` on. With
        ``enforce_drawdown`` the env's drawdown limit applies: after a breach the position is flat.

        Returns:
            The :class:`BacktestResult` over ``bars`` from ``start``.
        """
        limit = policy.env_config.get("max_drawdown") if enforce_drawdown else None
        env = policy.make_env(
            bars, start=start, random_start=False, episode_length=None, max_drawdown=limit
        )
        s = env.start
        positions = policy_positions(policy, env)
        return run_backtest(
            bars.iloc[s:],
            positions,
            costs=env.costs,
            initial_equity=env.initial_equity,
            periods_per_year=periods_per_year,
            asset_class=asset_class,
        )

    def evaluate_episodes(
        self,
        policy: TrainedPolicy,
        bars: pd.DataFrame,
        *,
        n_episodes: int = 10,
        seed: int = 0,
        start: int | str | pd.Timestamp | None = None,
        end: int | str | pd.Timestamp | None = None,
        episode_length: int | None = None,
    ) -> dict[str, Any]:
        """Deterministic policy over seeded random-start episodes: length and reward stability.

        Returns:
            ``n_episodes``, ``ep_len_mean``/``ep_len_std``, ``ep_reward_mean``/``ep_reward_std``,
            ``drawdown_breaches`` (episodes terminated by the drawdown limit or ruin).
        """
        env = policy.make_env(
            bars,
            start=start,
            end=end,
            random_start=True,
            episode_length=episode_length or policy.env_config.get("episode_length"),
        )
        return episode_stats(policy, env, n_episodes=n_episodes, seed=seed)

    def _key(self) -> bytes:
        if self.store is None:
            raise RuntimeError("RLEngine has no store; stored policies need RLEngine(store=...)")
        if self.signing_key is None:
            raise PolicyIntegrityError("RLEngine has no signing_key; pass RLEngine(signing_key=)")
        return self.signing_key

    def save(self, policy: TrainedPolicy) -> str:
        """Sign and save a policy to the store; returns (and sets) its ``policy_id``.

        The id is ``policy.policy_id`` when set, else ``<algo>-<weights sha256[:16]>``; it is
        checked against ``POLICY_ID_PATTERN`` and signed with the metadata.

        Raises:
            RuntimeError: Without a store.
            PolicyIntegrityError: Without a signing key, or with an invalid id.
            PolicyFormatError: If the policy cannot be described in plain JSON.
        """
        key = self._key()
        policy.sha256 = policy.weights_sha256()
        default = f"{policy.algo}-{policy.sha256[:16]}"
        policy_id = check_policy_id(default if policy.policy_id is None else policy.policy_id)
        artifact = pack_policy(policy, key, policy_id)
        stored_id = self.store.save_policy(artifact, {**policy.meta(), "policy_id": policy_id})
        if stored_id != policy_id:
            raise PolicyIntegrityError(f"the store saved {policy_id!r} as {stored_id!r}")
        policy.policy_id = policy_id
        return policy_id

    def load(self, policy_id: str) -> TrainedPolicy:
        """Load a stored policy, refusing one whose signature does not verify.

        Everything happens in memory: the store's bytes are verified (HMAC over the weights'
        SHA-256 and the metadata JSON) before the JSON is parsed against its schema, an SB3 model
        is built from the stored spaces and hyperparameters, and the safetensors weights are
        loaded into it. Nothing is unpickled.

        Raises:
            RuntimeError: Without a store.
            PolicyIntegrityError: On an invalid id, a missing key, or a bad signature.
            PolicyFormatError: On signed metadata that breaks the schema.
        """
        key = self._key()
        check_policy_id(policy_id)
        artifact = PolicyArtifact.of(self.store.load_policy(policy_id))
        return verify_and_load(artifact, key, policy_id=policy_id)
