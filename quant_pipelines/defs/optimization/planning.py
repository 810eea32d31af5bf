"""What the request sensor launches: one keyed study run per pending HTTP request.

The transitions themselves (``launched``, ``deferred``) are the state machine's, in
:mod:`quant_pipelines.storage.requests`; this module only turns requests into run requests.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
import pandas as pd
from pymongo.database import Database

from quant_pipelines.defs.optimization.tags import REQUEST_RUN_KEY_TAG, REQUEST_TAG, run_tags
from quant_pipelines.marketdata import is_session_open, next_session_close
from quant_pipelines.storage import requests


def request_run_config(request: dict) -> dict:
    """Run config of the study run that serves an HTTP optimization request.

    Every validation option of the request reaches the run: ``walk_forward: false`` means no
    folds (``validation: none``), an object sets ``n_folds``, ``scheme``, ``train_frac`` and
    ``purge``, and ``validation: cpcv`` with its ``cpcv`` options selects CPCV.
    """
    params = request["params"]
    wf = params.get("walk_forward")
    config: dict = {
        "symbols": list(params["symbols"]),
        "start": params["start"],
        "end": params["end"],
        "n_trials": int(params["n_trials"]),
        "sampler": params["sampler"],
        "objective": params["objective"],
        "seed": int(params["seed"]),
        "study_name": request["study_name"],
        "request_id": request["request_id"],
    }
    if params.get("portfolio"):
        config["portfolio"] = True
        config["portfolio_strategy"] = params.get("portfolio_strategy") or params["strategy"]
    method = params.get("validation") or ("walk_forward" if wf else "none")
    config["validation"] = method
    if isinstance(wf, dict):
        for key in ("n_folds", "scheme", "train_frac", "purge"):
            if key in wf:
                config[key] = wf[key]
    cpcv = params.get("cpcv")
    if method == "cpcv" and isinstance(cpcv, dict):
        for key in ("n_groups", "n_test_groups", "purge", "embargo"):
            if key in cpcv:
                config[key] = cpcv[key]
    return {"ops": {"optimization_study": {"config": config}}}


def request_partition_strategy(request: dict) -> str:
    """The strategy partition of a request's run: its strategy, or for a portfolio request of
    ``signal_<name>`` the ``<name>`` partition (the other portfolio strategies have their own)."""
    params = request["params"]
    name = params.get("portfolio_strategy") or params["strategy"]
    return name.removeprefix("signal_") if params.get("portfolio") else name


def request_run_key(request: dict) -> str:
    """The run key of a request's next run: its id, or ``<id>:resume-<n>`` after n resumes."""
    resumes = int(request.get("resumes") or 0)
    request_id = request["request_id"]
    return request_id if resumes == 0 else f"{request_id}:resume-{resumes}"


def request_run(request: dict, run_key: str) -> dg.RunRequest:
    """The keyed run request of a request's study run."""
    asset_class = (request.get("asset_classes") or ["equity"])[0]
    return dg.RunRequest(
        run_key=run_key,
        partition_key=dg.MultiPartitionKey(
            {"strategy": request_partition_strategy(request), "asset_class": asset_class}
        ),
        run_config=request_run_config(request),
        tags={
            **run_tags(asset_class),
            REQUEST_TAG: request["request_id"],
            REQUEST_RUN_KEY_TAG: run_key,
        },
    )


def plan_request_runs(
    db: Database,
    *,
    now: pd.Timestamp,
    find_run: Callable[[str], str | None] = lambda _run_key: None,
    log: Callable[[str], None] = lambda _msg: None,
) -> list[dg.RunRequest]:
    """Launches the pending requests (``launched``); market-hours ones are deferred.

    A launched request whose run does not exist yet gets its run request again (Dagster
    creates one run per run key, so asking twice is safe); once the run exists its id is
    recorded on the request.

    Args:
        db: The project database.
        now: The evaluation time (UTC).
        find_run: The id of the run with a run key, if one exists (the request id for a
            request's first run, ``<id>:resume-<n>`` for the runs resuming its study).
        log: Where deferrals and launches are reported.

    Returns:
        One run request per request to launch, keyed by :func:`request_run_key`.
    """
    planned = []
    for request in requests.launched_without_run_id(db):
        run_key = request.get("run_key") or request_run_key(request)
        run_id = find_run(run_key)
        if run_id is None:
            planned.append(request_run(request, run_key))
        else:
            requests.record_run_id(db, request["request_id"], run_key, run_id)
    market_open = is_session_open("XNYS", now)
    for request in requests.pending_requests(db, now=now.to_pydatetime()):
        request_id, run_key = request["request_id"], request_run_key(request)
        run_id = find_run(run_key)
        if run_id is None and market_open and not request.get("urgent"):
            until = next_session_close("XNYS", now).to_pydatetime()
            requests.mark_deferred(
                db, request_id, until, reason="market hours", now=now.to_pydatetime()
            )
            log(f"request {request_id} deferred to {until.isoformat()} (market hours)")
            continue
        requests.mark_launched(db, request_id, run_key, now=now.to_pydatetime())
        if run_id is None:
            planned.append(request_run(request, run_key))
            log(f"request {request_id} launched as run key {run_key}")
        else:  # the run of an earlier tick exists already
            requests.record_run_id(db, request_id, run_key, run_id)
    return planned
