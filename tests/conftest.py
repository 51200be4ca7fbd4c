"""Session harness: a throwaway PostgreSQL cluster, the Airflow settings, the app schema.

The cluster is the ``test`` profile's (its own folder and port), started here when it is not
already running and stopped again at the end of the session, so a bare ``pytest`` works and
nothing outlives it. Airflow settings go into the environment before any test imports
Airflow.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from nightshift_dev.localdev.environment import profile

PROFILE = profile("test")
SESSION_PREFIX = "app_session_"
# Each pytest session gets an application database of its own, so sessions running side by
# side (two terminals, or a developer beside CI) never reset each other's tables.
SESSION_DB = f"{SESSION_PREFIX}{os.getpid()}"
_started_cluster = False

pytest_plugins = ["emulator.pytest_plugin"]


def pytest_configure(config: pytest.Config) -> None:
    global _started_cluster
    PROFILE.prepare_airflow_home()
    os.environ.update(PROFILE.environment())
    _started_cluster = PROFILE.cluster.ensure_started()
    with psycopg.connect(PROFILE.cluster.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{SESSION_DB}"')
        conn.execute(f'CREATE DATABASE "{SESSION_DB}"')
    dsn = PROFILE.cluster.dsn(SESSION_DB)
    os.environ["AIRFLOW_CONN_NIGHTSHIFT_DB"] = dsn
    # Tests poll fast against a local emulator; the load test sets a real budget itself.
    os.environ.setdefault("AIRFLOW__NIGHTSHIFT__POLL_BUDGET_RPM", "60000")
    os.environ.setdefault("AIRFLOW__NIGHTSHIFT__BATCH_API_RPM", "60000")


def pytest_unconfigure(config: pytest.Config) -> None:
    if "airflow.settings" in sys.modules:  # close Airflow's pooled connections before the server goes
        sys.modules["airflow.settings"].dispose_orm()
    with psycopg.connect(PROFILE.cluster.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{SESSION_DB}" WITH (FORCE)')
        names = [n for (n,) in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                            (SESSION_PREFIX + "%",))]
    others = [n for n in names if _alive(int(n.removeprefix(SESSION_PREFIX)))]
    if _started_cluster and not others and not os.environ.get("NIGHTSHIFT_KEEP_PG"):
        PROFILE.cluster.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


@pytest.fixture(scope="session")
def pg_cluster():
    return PROFILE.cluster


@pytest.fixture(scope="session")
def app_dsn(pg_cluster) -> str:
    return pg_cluster.dsn(SESSION_DB)


def reset_app_schema(dsn: str) -> None:
    from nightshift_dev.localdev.schema import apply_schema

    with psycopg.connect(dsn) as conn:
        conn.execute("DROP SCHEMA IF EXISTS app CASCADE")
        conn.execute("DROP SCHEMA IF EXISTS nightshift CASCADE")
        apply_schema(conn)


@pytest.fixture
def app_db(app_dsn):
    """A psycopg connection to a freshly created application schema."""
    reset_app_schema(app_dsn)
    with psycopg.connect(app_dsn) as conn:
        yield conn


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata DB (Postgres) with the DAGs registered, once per session.

    The downstream DAG is unpaused, as in production: Airflow queues asset-triggered runs
    only for unpaused consumers.
    """
    airflow = str(Path(sys.executable).parent / "airflow")
    for command in (["db", "migrate"], ["dags", "reserialize"], ["dags", "unpause", "nightly_insights"]):
        result = subprocess.run([airflow, *command], env=os.environ.copy(), capture_output=True, text=True)
        if result.returncode != 0:
            pytest.fail(f"airflow {' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return PROFILE.airflow_home


@pytest.fixture
def anthropic_conn(emulator, monkeypatch):
    """Point the standard ``anthropic_default`` connection at this test's emulator."""
    import json

    monkeypatch.setenv(
        "AIRFLOW_CONN_ANTHROPIC_DEFAULT",
        json.dumps({"conn_type": "anthropic", "host": emulator.url, "password": emulator.api_key}),
    )
    return emulator
