"""A real local Airflow (scheduler, dag-processor, triggerer, api-server) for the tests that need one.

``airflow standalone`` in the test profile, against the session's app database and emulator,
started once for the tests of this folder and stopped after them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import httpx
import pytest

from nightshift_dev.localdev.services import Service

pytestmark = pytest.mark.stack


@pytest.fixture(scope="session")
def monkeypatch_session():
    patcher = pytest.MonkeyPatch()
    yield patcher
    patcher.undo()


class Stack:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        token = httpx.post(f"{base_url}/auth/token", json={"username": "admin", "password": "admin"}).json()
        self.client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token['access_token']}"},
                                   timeout=30)

    def api(self, method: str, path: str, **kwargs) -> dict:
        response = self.client.request(method, f"/api/v2{path}", **kwargs)
        response.raise_for_status()
        return response.json()

    def forget_runs(self, dag_id: str) -> None:
        """Cancel the DAG's unfinished backfills and delete its runs, so a test starts clean."""
        for backfill in self.api("GET", "/backfills", params={"dag_id": dag_id})["backfills"]:
            if not backfill.get("completed_at"):
                self.api("PUT", f"/backfills/{backfill['id']}/cancel")
        for run in self.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]:
            path = f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}"
            if run["state"] not in ("success", "failed"):
                self.api("PATCH", path, json={"state": "failed"})
            self.client.delete(f"/api/v2{path}").raise_for_status()

    def wait_until_idle(self, dag_id: str, timeout: float = 300.0) -> list[dict]:
        """Poll until the DAG has runs and none of them is queued or running."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]
            if runs and all(r["state"] in ("success", "failed") for r in runs):
                return runs
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} not idle: {[r['state'] for r in runs]}")
            time.sleep(2)

    def wait_for_runs(self, dag_id: str, count: int, *, timeout: float = 300.0, prefix: str = "") -> list[dict]:
        """Poll the REST API until ``count`` runs of the DAG have finished (success or failed)."""
        deadline = time.monotonic() + timeout
        while True:
            runs = [r for r in self.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]
                    if r["dag_run_id"].startswith(prefix)]
            done = [r for r in runs if r["state"] in ("success", "failed")]
            if len(done) >= count:
                return done
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id}: {len(done)} of {count} runs finished: {[r['state'] for r in runs]}")
            time.sleep(2)


STACK_METADATA_DB = "airflow_stack"


def fresh_metadata_db(cluster, env: dict[str, str], name: str = STACK_METADATA_DB) -> str:
    """A metadata database of the stack's own, migrated from scratch.

    The DAG tests leave runs and trigger rows in the session's metadata DB; a real triggerer
    would adopt those stale triggers, so the stack starts from a clean one.
    """
    import subprocess

    import psycopg

    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = cluster.sqlalchemy_url(name)
    airflow = str(Path(sys.executable).parent / "airflow")
    for command in (["db", "migrate"], ["dags", "reserialize"]):
        result = subprocess.run([airflow, *command], env={**env, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url},
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
    return url


#: this session's `airflow standalone`, once a test asked for it
_standalone: Service | None = None


@pytest.fixture(scope="session")
def standalone_service(emulator_server, app_dsn, monkeypatch_session):
    global _standalone
    from tests.conftest import PROFILE

    bin_dir = str(Path(sys.executable).parent)
    url = fresh_metadata_db(PROFILE.cluster, dict(os.environ))
    # `airflow backfill create` run by the tests must talk to the same metadata DB
    monkeypatch_session.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", url)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        "AIRFLOW_CONN_ANTHROPIC_DEFAULT": json.dumps(
            {"conn_type": "anthropic", "host": emulator_server.url, "password": emulator_server.api_key}),
    }
    _standalone = Service(name="airflow-test", argv=[str(Path(bin_dir) / "airflow"), "standalone"],
                          run_dir=PROFILE.root / "run", env=env,
                          health_url=f"http://127.0.0.1:{PROFILE.api_port}/api/v2/monitor/health")
    try:
        yield _standalone
    finally:
        _standalone.stop()
        _standalone = None


@pytest.fixture
def airflow_stack(standalone_service):
    """The standalone stack, started once and kept for the session (started again if the Celery
    stack stopped it)."""
    from tests.conftest import PROFILE

    standalone_service.start(timeout=240)
    return Stack(f"http://127.0.0.1:{PROFILE.api_port}")


@pytest.fixture
def celery_stack(emulator_server, app_dsn):
    """Airflow on the CeleryExecutor (:mod:`tests.stack.celery_stack`), with a metadata DB, an API
    port and a broker of its own. This session's standalone stack is stopped first, so the two never
    run at once; every process is stopped and the database dropped afterwards, whatever the test did."""
    import psycopg

    from tests.conftest import PROFILE
    from tests.stack.celery_stack import CeleryStack

    env = {**os.environ, "AIRFLOW_CONN_ANTHROPIC_DEFAULT": json.dumps(
        {"conn_type": "anthropic", "host": emulator_server.url, "password": emulator_server.api_key})}
    root = PROFILE.root / "celery"
    name = f"airflow_celery_{os.getpid()}"
    stack = CeleryStack(root=root, metadata_url=PROFILE.cluster.sqlalchemy_url(name), base_env=env)
    if _standalone is not None:  # two Airflows at once on a small machine; airflow_stack restarts it
        _standalone.stop()
    try:
        fresh_metadata_db(PROFILE.cluster, stack.environment(), name)
        stack.start()
        stack.api = Stack(stack.base_url)
        import_errors = stack.api.api("GET", "/importErrors")["import_errors"]
        assert not import_errors, "\n".join(f"{e['filename']}: {e['stack_trace']}" for e in import_errors)
        yield stack
    finally:
        stack.stop()
        with psycopg.connect(PROFILE.cluster.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
