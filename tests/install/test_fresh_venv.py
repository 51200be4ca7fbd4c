"""Nightshift installed as a team installs it: the built wheel into a fresh virtualenv holding only
Airflow, then a night run from a workloads folder of that deployment's choosing.

Nothing of this repository is on that virtualenv's path: not the sources, not the devtools. The
emulator runs from this repository's environment, as a separate process the deployment's
`anthropic` connection points at; the app tables are created the way a team already has them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from nightshift.paths import PROJECT_ROOT
from nightshift_dev import demo_data

pytestmark = pytest.mark.install

AIRFLOW = "apache-airflow==3.3.2"


def run(argv: list, *, env: dict | None = None, cwd: Path | None = None, timeout: int = 900) -> str:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    assert result.returncode == 0, f"{argv[:4]} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result.stdout


def json_output(stdout: str):
    """The JSON an `airflow ... --output json` printed (log lines may come before it)."""
    return json.loads(next(line for line in reversed(stdout.splitlines()) if line.startswith(("[", "{"))))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """A fresh venv with Airflow and the wheel, built from this work tree the way a release is."""
    root = tmp_path_factory.mktemp("deployment")
    wheels = root / "wheels"
    # setuptools leaves build/ and src/nightshift.egg-info in the tree it builds from; the egg-info beside
    # the sources would be a second "nightshift" distribution (two providers, two plugins) for every
    # later Airflow process of this work tree, so the build leaves the tree as it found it
    leftovers = [PROJECT_ROOT / "build", PROJECT_ROOT / "src" / "nightshift.egg-info"]
    existed = {path for path in leftovers if path.exists()}
    try:
        run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", wheels, PROJECT_ROOT])
    finally:
        for path in set(leftovers) - existed:
            shutil.rmtree(path, ignore_errors=True)
    (wheel,) = wheels.glob("nightshift-*.whl")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", venv])
    # constraints.txt only chooses versions among what the wheel and Airflow ask for; it adds nothing
    run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         AIRFLOW, wheel, "-c", PROJECT_ROOT / "constraints.txt"])
    return root, venv, wheel


def test_the_wheel_ships_its_data_and_none_of_the_repositorys_tooling(deployment):
    import zipfile

    _, _, wheel = deployment
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"nightshift/data/prices.yaml", "nightshift/data/models.yaml",
            "nightshift/ledger/migrations/002_ledger_schema.sql", "nightshift/plugin.py"} <= names
    assert not [n for n in names if n.startswith(("emulator/", "nightshift_dev/", "nightshift/localdev/",
                                                   "nightshift/bench/", "tests/", "include/"))]
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [line for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
                if line.startswith("Requires-Dist:")]
    assert any("apache-airflow-providers-anthropic" in r for r in requires)
    entry_points = zipfile.ZipFile(wheel).read(metadata.replace("METADATA", "entry_points.txt")).decode()
    assert "[apache_airflow_provider]" in entry_points and "[airflow.plugins]" in entry_points


def test_a_night_runs_from_the_installed_wheel(deployment, pg_cluster, emulator, tmp_path):
    root, venv, _ = deployment
    bin_dir = venv / "bin"
    app_db = f"install_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_cluster.dsn("postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{app_db}"')
    app_dsn = pg_cluster.dsn(app_db)

    # The deployment's own layout: DAGs and workloads where it likes, nothing from this repository.
    home, dags, workloads = tmp_path / "airflow", tmp_path / "dags", tmp_path / "team" / "llm-workloads"
    dags.mkdir()
    shutil.copy(PROJECT_ROOT / "dags" / "nightshift_batch.py", dags)
    shutil.copytree(PROJECT_ROOT / "workloads", workloads)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
        "AIRFLOW__NIGHTSHIFT__WORKLOADS_FOLDER": str(workloads),
        "AIRFLOW__NIGHTSHIFT__POLL_BUDGET_RPM": "60000", "AIRFLOW__NIGHTSHIFT__BATCH_API_RPM": "60000",
        "AIRFLOW_CONN_NIGHTSHIFT_DB": app_dsn,
        "AIRFLOW_CONN_ANTHROPIC_DEFAULT": json.dumps({"conn_type": "anthropic", "host": emulator.url,
                                                      "password": "sk-ant-emulator-local"}),
    }

    providers = run([bin_dir / "airflow", "providers", "list", "--output", "json"], env=env)
    assert "nightshift" in {p["package_name"] for p in json_output(providers)}
    plugins = run([bin_dir / "airflow", "plugins", "--output", "json"], env=env)
    assert "nightshift" in {p["name"] for p in json_output(plugins)}

    # The team's tables exist already (their streaming path wrote them); the ledger and the queue do not.
    with psycopg.connect(app_dsn) as conn:
        conn.execute((PROJECT_ROOT / "include" / "sql" / "001_app_schema.sql").read_text())
        counts = demo_data.generate(conn, tickets=40, products=0, seed=3, enqueue=False)
        assert conn.execute("SELECT to_regclass('nightshift.runs')").fetchone()[0] is None
    upgraded = run([bin_dir / "nightshift", "db", "upgrade"], env=env)
    assert "applied 002_ledger_schema" in upgraded and "009_request_queue" in upgraded
    enqueued = run([bin_dir / "nightshift", "enqueue", "--workload", "ticket_classification",
                    "--where", "ticket_id>=1"], env=env)
    assert f"{counts.tickets} queued, 0 already pending" in enqueued

    run([bin_dir / "airflow", "db", "migrate"], env=env)
    listed = run([bin_dir / "airflow", "dags", "list", "--output", "json", "--local"], env=env)
    assert "nightshift_batch_ticket_classification" in {d["dag_id"] for d in json_output(listed)}
    run([bin_dir / "airflow", "dags", "test", "nightshift_batch_ticket_classification"], env=env)

    with psycopg.connect(app_dsn) as conn:
        status, requests, succeeded = conn.execute(
            "SELECT status, requests, succeeded FROM nightshift.runs WHERE workload = 'ticket_classification'").fetchone()
        queued = conn.execute("SELECT count(*) FROM app.llm_requests WHERE workload = 'ticket_classification'").fetchone()[0]
        landed = conn.execute("SELECT count(*) FROM app.ticket_classifications").fetchone()[0]
    assert status == "succeeded" and requests == queued == counts.tickets
    assert landed == succeeded > 0
    with psycopg.connect(pg_cluster.dsn("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{app_db}" WITH (FORCE)')
