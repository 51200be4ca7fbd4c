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


def fresh_metadata_db(cluster, env: dict[str, str]) -> str:
    """A metadata database of the stack's own, migrated from scratch.

    The DAG tests leave runs and trigger rows in the session's metadata DB; a real triggerer
    would adopt those stale triggers, so the stack starts from a clean one.
    """
    import subprocess

    import psycopg

    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{STACK_METADATA_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{STACK_METADATA_DB}"')
    url = cluster.sqlalchemy_url(STACK_METADATA_DB)
    airflow = str(Path(sys.executable).parent / "airflow")
    for command in (["db", "migrate"], ["dags", "reserialize"]):
        result = subprocess.run([airflow, *command], env={**env, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url},
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
    return url


@pytest.fixture(scope="session")
def airflow_stack(emulator_server, app_dsn, monkeypatch_session):
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
    service = Service(name="airflow-test", argv=[str(Path(bin_dir) / "airflow"), "standalone"],
                      run_dir=PROFILE.root / "run", env=env,
                      health_url=f"http://127.0.0.1:{PROFILE.api_port}/api/v2/monitor/health")
    service.start(timeout=240)
    try:
        yield Stack(f"http://127.0.0.1:{PROFILE.api_port}")
    finally:
        service.stop()
