"""The JSON metadata of a stored policy: canonical text, strict parsing, a field whitelist.

Nothing here unpickles: the metadata is parsed with ``json`` (no NaN/Infinity constants, no
duplicate keys, canonical text only), every top-level field is checked against a schema, free-form
sections (``env_config``, ``metrics``, ``guardrails``) may hold only JSON scalars, lists and
objects, and a key ``:serialized:`` (SB3's cloudpickle marker) or a string that decodes to a pickle
stream is refused outright with :class:`PolicyFormatError`.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable
from typing import Any

import torch

from quant_pipelines.rl._algos import ALGOS
from quant_pipelines.rl._envs import costs_from_config
from quant_pipelines.rl._jsontypes import (
    PolicyFormatError,
    canonical_json,
    decode_space,
    no_constants,
    numbers,
    plain_tree,
    typed,
    unique_keys,
)

FORMAT = "qp-rl-policy/1"
POLICY_CLASS = "MlpPolicy"

#: torch classes a policy's ``policy_kwargs`` may name (stored by name, never pickled).
ACTIVATIONS: dict[str, type[torch.nn.Module]] = {
    c.__name__: c
    for c in (torch.nn.ReLU, torch.nn.Tanh, torch.nn.ELU, torch.nn.LeakyReLU, torch.nn.GELU)
}
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    c.__name__: c for c in (torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop)
}
_CLASS_KWARGS = {"activation_fn": ACTIVATIONS, "optimizer_class": OPTIMIZERS}
_SCALAR_POLICY_KWARGS = {
    "ortho_init": bool,
    "use_sde": bool,
    "log_std_init": float,
    "full_std": bool,
    "use_expln": bool,
    "squash_output": bool,
    "share_features_extractor": bool,
    "normalize_images": bool,
    "n_critics": int,
    "clip_mean": float,
}
#: Constructor arguments never taken from stored metadata (objects, or set by the loader).
_NOT_STORED = {
    "self", "policy", "env", "device", "seed", "verbose", "tensorboard_log", "_init_setup_model",
    "policy_kwargs", "action_noise", "replay_buffer_class", "replay_buffer_kwargs",
    "rollout_buffer_class", "rollout_buffer_kwargs",
}  # fmt: skip
ENV_CONFIG_KEYS = {
    "action_space", "observation", "reward", "drawdown_penalty", "sharpe_eta", "reward_clip",
    "initial_equity", "episode_length", "max_drawdown", "costs",
}  # fmt: skip


# -- hyperparameters -------------------------------------------------------------------------


def _allowed_hyperparams(algo: str) -> set[str]:
    params = inspect.signature(ALGOS[algo].__init__).parameters
    return set(params) - _NOT_STORED


def _scalar(value: Any, where: str) -> Any:
    if isinstance(value, list):
        for item in value:
            _scalar(item, where)
        return value
    if value is None or isinstance(value, str | bool | int | float):
        return plain_tree(value, where)
    raise PolicyFormatError(f"{where}: cannot store {type(value).__name__} {value!r}")


def _policy_kwargs(kwargs: dict[str, Any], where: str, *, decode: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in typed(kwargs, dict, where).items():
        at = f"{where}.{key}"
        if key in _CLASS_KWARGS:
            table = _CLASS_KWARGS[key]
            name = value if decode else getattr(value, "__name__", value)
            if not isinstance(name, str) or name not in table:
                raise PolicyFormatError(f"{at}: {value!r} is not one of {sorted(table)}")
            out[key] = table[name] if decode else name
        elif key in _SCALAR_POLICY_KWARGS:
            out[key] = typed(value, _SCALAR_POLICY_KWARGS[key], at)
        elif key == "net_arch":
            arch = value if isinstance(value, dict) else {"": value}
            for part, sizes in typed(arch, dict, at).items():
                if part not in ("", "pi", "vf", "qf"):
                    raise PolicyFormatError(f"{at}: unknown part {part!r}")
                for size in typed(sizes, list, at):
                    typed(size, int, at)
            out[key] = value
        elif key in ("optimizer_kwargs", "features_extractor_kwargs"):
            out[key] = {k: _scalar(v, f"{at}.{k}") for k, v in typed(value, dict, at).items()}
        else:
            raise PolicyFormatError(f"{at}: unknown policy_kwargs field")
    return out


def encode_hyperparams(algo: str, hyperparams: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters as JSON (torch classes by name); refuses what could not be rebuilt."""
    return _hyperparams(algo, hyperparams, decode=False)


def decode_hyperparams(algo: str, doc: Any) -> dict[str, Any]:
    """Constructor keyword arguments from stored hyperparameters (classes from a whitelist)."""
    return _hyperparams(algo, doc, decode=True)


def _hyperparams(algo: str, doc: Any, *, decode: bool) -> dict[str, Any]:
    allowed = _allowed_hyperparams(algo)
    out: dict[str, Any] = {}
    for key, value in typed(doc, dict, "hyperparams").items():
        if key == "policy_kwargs":
            out[key] = _policy_kwargs(value, "hyperparams.policy_kwargs", decode=decode)
        elif key in allowed:
            value = list(value) if isinstance(value, tuple) else value
            out[key] = _scalar(value, f"hyperparams.{key}")
            if decode and key == "train_freq" and isinstance(value, list):
                out[key] = tuple(value)
        else:
            raise PolicyFormatError(f"hyperparams.{key}: not a storable {algo} hyperparameter")
    return out


# -- the whole document ----------------------------------------------------------------------


def _obs_norm(value: Any) -> Any:
    if value is None:
        return None
    typed(value, dict, "obs_norm")
    required = {"mean", "var", "clip_obs", "epsilon"}
    if not required <= set(value) <= required | {"count"}:
        raise PolicyFormatError(f"obs_norm: expected fields {sorted(required)} (+ count)")
    numbers(value["mean"], "obs_norm.mean")
    numbers(value["var"], "obs_norm.var")
    for key in ("clip_obs", "epsilon", "count"):
        if key in value:
            typed(value[key], float, f"obs_norm.{key}")
    return value


def _env_config(value: Any) -> Any:
    plain_tree(typed(value, dict, "env_config"), "env_config")
    unknown = sorted(set(value) - ENV_CONFIG_KEYS)
    if unknown:
        raise PolicyFormatError(f"env_config: unknown fields {unknown}")
    if "costs" in value:  # flat-cost fields, or a tagged model's (``_envs.costs_config``)
        costs = typed(value["costs"], dict, "env_config.costs")
        try:
            costs_from_config(costs)
        except (TypeError, ValueError) as exc:
            raise PolicyFormatError(f"env_config.costs: {exc}") from exc
    return value


_opt_str = (str, type(None))
#: Field name -> checker of its value.
SCHEMA: dict[str, Callable[[Any], Any]] = {
    "format": lambda v: v,
    "policy_id": lambda v: typed(v, str, "policy_id"),
    "algo": lambda v: typed(v, str, "algo"),
    "policy_class": lambda v: typed(v, str, "policy_class"),
    "seed": lambda v: typed(v, int, "seed"),
    "action_space": lambda v: typed(v, str, "action_space"),
    "spaces": lambda v: typed(v, dict, "spaces"),
    "total_timesteps": lambda v: typed(v, int, "total_timesteps"),
    "num_timesteps": lambda v: typed(v, int, "num_timesteps"),
    "env_config": _env_config,
    "hyperparams": lambda v: typed(v, dict, "hyperparams"),
    "guardrails": lambda v: plain_tree(typed(v, dict, "guardrails"), "guardrails"),
    "obs_norm": _obs_norm,
    "checkpoints": lambda v: [typed(c, str, "checkpoints") for c in typed(v, list, "checkpoints")],
    "best_model_path": lambda v: typed(v, _opt_str, "best_model_path"),
    "run_dir": lambda v: typed(v, _opt_str, "run_dir"),
    "metrics": lambda v: plain_tree(typed(v, dict, "metrics"), "metrics"),
}


def parse_spec(text: str) -> dict[str, Any]:
    """Parse and validate signed policy metadata; returns it with spaces and classes rebuilt.

    Raises:
        PolicyFormatError: On non-canonical or non-JSON text, a missing or unknown field, a wrong
            type, an unsupported algorithm/space, or a serialized/pickled payload anywhere.
    """
    try:
        doc = json.loads(text, parse_constant=no_constants, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as exc:
        raise PolicyFormatError(f"policy metadata is not JSON: {exc}") from exc
    plain_tree(typed(doc, dict, "metadata"), "metadata")
    if canonical_json(doc) != text:
        raise PolicyFormatError("policy metadata is not in canonical JSON form")
    if set(doc) != set(SCHEMA):
        missing, unknown = sorted(set(SCHEMA) - set(doc)), sorted(set(doc) - set(SCHEMA))
        raise PolicyFormatError(f"policy metadata fields: missing {missing}, unknown {unknown}")
    for key, check in SCHEMA.items():
        check(doc[key])
    if doc["format"] != FORMAT or doc["policy_class"] != POLICY_CLASS:
        raise PolicyFormatError(f"unsupported format {doc['format']!r}/{doc['policy_class']!r}")
    if doc["algo"] not in ALGOS or doc["action_space"] not in ("discrete", "continuous"):
        raise PolicyFormatError(f"unsupported algo/action space {doc['algo']!r}")
    if set(doc["spaces"]) != {"observation", "action"}:
        raise PolicyFormatError("spaces: expected exactly 'observation' and 'action'")
    parsed = dict(doc)
    parsed["observation_space"] = decode_space(doc["spaces"]["observation"], "spaces.observation")
    parsed["action_space_obj"] = decode_space(doc["spaces"]["action"], "spaces.action")
    parsed["constructor_kwargs"] = decode_hyperparams(doc["algo"], doc["hyperparams"])
    obs_dim = math.prod(parsed["observation_space"].shape)
    norm = doc["obs_norm"]
    if norm is not None and not len(norm["mean"]) == len(norm["var"]) == obs_dim:
        raise PolicyFormatError(f"obs_norm: mean/var must have {obs_dim} values")
    return parsed
