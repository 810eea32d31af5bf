"""optuna-dashboard: authenticated, read-only, loopback unless explicitly made public.

The HTTP tests run the real ``quant-pipelines optuna-dashboard`` command (optuna-dashboard
over the real test MongoDB server) and call its JSON API like the browser UI does.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import optuna
import optuna_dashboard
import pytest
from pymongo.database import Database

from quant_pipelines.cli._dashboard import DashboardGuard, dashboard_token
from quant_pipelines.storage import optuna_storage
from quant_pipelines.storage._readonly_optuna import (
    WRITE_METHODS,
    ReadOnlyStorage,
    ReadOnlyStorageError,
)
from quant_pipelines.storage.embedded import free_port

TOKEN = "dash-test-token-8d1f0e"
_COMMAND = (sys.executable, "-m", "quant_pipelines.cli", "optuna-dashboard")


def _make_study(db: Database, name: str = "dash-study", n: int = 3) -> optuna.Study:
    storage = optuna_storage(db, heartbeat_interval=None)
    study = optuna.create_study(study_name=name, storage=storage)
    study.set_user_attr("owner", "quant")
    study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=n)
    return study


def _snapshot(db: Database) -> dict:
    """Everything a write could change, read through a fresh storage."""
    storage = optuna_storage(db, heartbeat_interval=None)
    out = {}
    for s in storage.get_all_studies():
        trials = storage.get_all_trials(s._study_id)
        out[s.study_name] = {
            "user_attrs": s.user_attrs,
            "system_attrs": s.system_attrs,
            "trials": [(t.number, t.state, t.values, t.params, t.user_attrs) for t in trials],
        }
    return out


@contextlib.contextmanager
def _dashboard(
    mongo_uri: str, db: Database, home: Path, *extra: str, token: str | None = TOKEN
) -> Iterator[str]:
    port = free_port()
    env = dict(os.environ) | {
        "MONGODB_URI": mongo_uri,
        "MONGODB_DB": db.name,
        "DAGSTER_HOME": str(home),
    }
    env.pop("QP_DASHBOARD_TOKEN", None)
    if token is not None:
        env["QP_DASHBOARD_TOKEN"] = token
    proc = subprocess.Popen(
        [*_COMMAND, "--port", str(port), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                httpx.get(f"{base}/api/meta", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.3)
        else:
            pytest.fail("optuna-dashboard did not answer on 127.0.0.1")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.slow
def test_every_request_needs_the_token(mongo_db: Database, mongo_uri: str, tmp_path) -> None:
    _make_study(mongo_db)
    with _dashboard(mongo_uri, mongo_db, tmp_path) as base:
        bare = httpx.get(f"{base}/api/studies", timeout=5)
        assert bare.status_code == 401
        assert bare.headers["WWW-Authenticate"].startswith("Basic ")  # the browser prompts
        assert "study_summaries" not in bare.text
        for page in ("/dashboard", "/api/meta", "/"):
            assert httpx.get(f"{base}{page}", timeout=5).status_code == 401
        wrong = httpx.get(f"{base}/api/studies", auth=("anyone", "not-the-token"), timeout=5)
        assert wrong.status_code == 401
        bad_bearer = {"Authorization": "Bearer not-the-token"}
        assert httpx.get(f"{base}/api/studies", headers=bad_bearer, timeout=5).status_code == 401
        # The token as HTTP Basic password (what a browser sends) or as a Bearer token.
        basic = httpx.get(f"{base}/api/studies", auth=("analyst", TOKEN), timeout=5)
        assert basic.status_code == 200
        assert [s["study_name"] for s in basic.json()["study_summaries"]] == ["dash-study"]
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{base}/api/studies", headers=bearer, timeout=5).status_code == 200
        # Without credentials, writes are refused before anything else.
        unauth = httpx.post(f"{base}/api/studies", json={"study_name": "x"}, timeout=5)
        assert unauth.status_code == 401


@pytest.mark.slow
def test_create_rename_delete_and_annotations_are_refused(
    mongo_db: Database, mongo_uri: str, tmp_path
) -> None:
    study = _make_study(mongo_db)
    before = _snapshot(mongo_db)
    with _dashboard(mongo_uri, mongo_db, tmp_path) as base:
        client = httpx.Client(base_url=base, auth=("analyst", TOKEN), timeout=10)
        sid = client.get("/api/studies").json()["study_summaries"][0]["study_id"]
        trial_id = study.trials[0]._trial_id
        attempts = {
            "create": client.post(
                "/api/studies", json={"study_name": "new", "directions": ["minimize"]}
            ),
            "rename": client.post(f"/api/studies/{sid}/rename", json={"study_name": "renamed"}),
            "delete": client.delete(f"/api/studies/{sid}"),
            "study note": client.put(
                f"/api/studies/{sid}/note", json={"version": 0, "body": "hello"}
            ),
            "trial note": client.put(
                f"/api/studies/{sid}/{trial_id}/note", json={"version": 0, "body": "hi"}
            ),
            "user attrs": client.post(
                f"/api/trials/{trial_id}/user-attrs", json={"user_attrs": {"k": "v"}}
            ),
            "tell": client.post(
                f"/api/trials/{trial_id}/tell", json={"state": "Fail", "values": []}
            ),
        }
        for what, response in attempts.items():
            assert response.status_code == 403, (what, response.status_code, response.text)
            assert "read-only" in response.json()["reason"]
        # Reads still work, and show the same study.
        detail = client.get(f"/api/studies/{sid}").json()
        assert detail["name"] == "dash-study" and len(detail["trials"]) == 3
        assert client.get(f"/api/studies/{sid}/param_importances").status_code == 200
        names = [s["study_name"] for s in client.get("/api/studies").json()["study_summaries"]]
        assert names == ["dash-study"]
    assert _snapshot(mongo_db) == before


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _serve_in_thread(app) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_read_only_storage_alone_stops_the_dashboards_writes(mongo_db: Database) -> None:
    """Second layer: with the method filter off, the storage still refuses every write.

    The real optuna-dashboard app runs over ``ReadOnlyStorage``; its create, rename (create a
    copy, then delete the source) and delete end in HTTP errors, the server keeps serving,
    and nothing changed in MongoDB.
    """
    _make_study(mongo_db)
    before = _snapshot(mongo_db)
    ro = ReadOnlyStorage(optuna_storage(mongo_db, heartbeat_interval=None))
    app = DashboardGuard(optuna_dashboard.wsgi(ro), TOKEN, read_only=False)
    with _serve_in_thread(app) as base:
        client = httpx.Client(base_url=base, auth=("u", TOKEN), timeout=10)
        sid = client.get("/api/studies").json()["study_summaries"][0]["study_id"]
        create = client.post("/api/studies", json={"study_name": "n", "directions": ["minimize"]})
        rename = client.post(f"/api/studies/{sid}/rename", json={"study_name": "renamed"})
        delete = client.delete(f"/api/studies/{sid}")
        note = client.put(f"/api/studies/{sid}/note", json={"version": 0, "body": "x"})
        for response in (create, rename, delete, note):
            assert response.status_code >= 400, response.text
        assert client.get(f"/api/studies/{sid}").status_code == 200  # still serving
    assert _snapshot(mongo_db) == before


def test_every_write_method_of_the_storage_api_raises(mongo_db: Database) -> None:
    study = _make_study(mongo_db, n=2)
    inner = optuna_storage(mongo_db, heartbeat_interval=None)
    ro = ReadOnlyStorage(inner)
    sid = ro.get_study_id_from_name("dash-study")
    tid = study.trials[0]._trial_id
    args = {
        "create_new_study": ([optuna.study.StudyDirection.MINIMIZE], "x"),
        "delete_study": (sid,),
        "set_study_user_attr": (sid, "k", 1),
        "set_study_system_attr": (sid, "k", 1),
        "create_new_trial": (sid,),
        "set_trial_param": (tid, "x", 0.0, optuna.distributions.FloatDistribution(-1, 1)),
        "set_trial_state_values": (tid, optuna.trial.TrialState.FAIL),
        "set_trial_intermediate_value": (tid, 1, 0.5),
        "set_trial_user_attr": (tid, "k", 1),
        "set_trial_system_attr": (tid, "k", 1),
    }
    assert set(args) == set(WRITE_METHODS)
    before = _snapshot(mongo_db)
    for name, call_args in args.items():
        with pytest.raises(ReadOnlyStorageError, match="read-only"):
            getattr(ro, name)(*call_args)
    with pytest.raises(PermissionError):
        optuna.create_study(study_name="through-optuna", storage=ro)
    with pytest.raises(PermissionError):
        optuna.delete_study(study_name="dash-study", storage=ro)
    loaded = optuna.load_study(study_name="dash-study", storage=ro)
    with pytest.raises(PermissionError):
        loaded.set_user_attr("k", "v")
    with pytest.raises(PermissionError):
        loaded.optimize(lambda t: 0.0, n_trials=1)
    # Reads pass through unchanged.
    assert [t.params for t in loaded.trials] == [t.params for t in study.trials]
    assert loaded.best_value == study.best_value
    assert ro.get_study_user_attrs(sid) == {"owner": "quant"}
    assert ro.get_n_trials(sid) == 2
    assert _snapshot(mongo_db) == before


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quant_pipelines.cli", "optuna-dashboard", *args],
        env=dict(os.environ) | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_a_public_host_is_refused_without_the_explicit_flag(tmp_path) -> None:
    env = {"DAGSTER_HOME": str(tmp_path), "QP_DASHBOARD_TOKEN": TOKEN}
    refused = _cli("--host", "0.0.0.0", "--port", str(free_port()), env=env)
    assert refused.returncode != 0
    assert "refusing to listen on '0.0.0.0'" in refused.stderr
    assert "--i-know-this-is-public" in refused.stderr
    # With the flag, the bind check passes: the command goes on to MongoDB (unreachable here,
    # so it stops there, before listening anywhere).
    env |= {"MONGODB_URI": f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=500"}
    allowed = _cli(
        "--host", "0.0.0.0", "--port", str(free_port()), "--i-know-this-is-public", env=env
    )
    assert allowed.returncode == 1
    assert "refusing to listen" not in allowed.stderr
    assert allowed.stderr.startswith("error:")


def test_the_token_file_is_created_owner_only_and_reused(tmp_path) -> None:
    token, source = dashboard_token(tmp_path, env={})
    path = tmp_path / "optuna_dashboard_token"
    assert source == str(path) and len(token) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert dashboard_token(tmp_path, env={}) == (token, source)
    assert dashboard_token(tmp_path, env={"QP_DASHBOARD_TOKEN": "from-env"})[0] == "from-env"
    path.chmod(0o644)
    with pytest.raises(PermissionError, match="owner-only"):
        dashboard_token(tmp_path, env={})
