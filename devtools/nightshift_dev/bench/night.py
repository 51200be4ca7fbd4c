"""A whole night through Airflow: ``dag.test()`` of the benchmark workload's batch DAG, in a child.

    python -m nightshift_dev.bench.night '{"dag_id": ..., "asset_uri": ...}'

``dag.test()`` runs the real tasks, the deferral and the trigger in one process against the
metadata DB, and records the Asset event as a scheduled run would. The child reports the
DAG run's state, each task's duration and the time from the start of ``collect`` to the
Asset event's timestamp.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from nightshift.workloads.definition import Workload


def run_child(environment: dict[str, str], workload: Workload) -> dict[str, Any]:
    """Migrate the metadata DB, then run the night in a child process with ``environment``."""
    from nightshift.dag_ids import batch_dag_id

    env = {**os.environ, **environment}
    airflow = str(Path(sys.executable).parent / "airflow")
    migrated = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True)
    if migrated.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{migrated.stdout[-2000:]}\n{migrated.stderr[-2000:]}")
    arguments = {"dag_id": batch_dag_id(workload.name), "asset_uri": workload.asset_uri}
    process = subprocess.run([sys.executable, "-m", "nightshift_dev.bench.night", json.dumps(arguments)], env=env,
                             stdout=subprocess.PIPE)
    if process.returncode != 0:
        raise RuntimeError(f"the night's child failed with exit code {process.returncode}")
    return json.loads(process.stdout.decode().strip().splitlines()[-1])


def _main(arguments: dict[str, Any]) -> dict[str, Any]:
    import logging

    import psycopg
    from airflow.dag_processing.dagbag import DagBag

    from nightshift_dev.localdev.environment import profile
    from nightshift.paths import PROJECT_ROOT

    logging.getLogger().setLevel(logging.WARNING)
    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / "nightshift_batch.py")).get_dag(arguments["dag_id"])
    if dag is None:
        raise SystemExit(f"DAG {arguments['dag_id']} not found")
    dag_run = dag.test(run_conf={"poll_interval_seconds": 1.0})
    instances = dag_run.get_task_instances()
    ran = sorted((ti for ti in instances if ti.start_date and ti.end_date and str(ti.state) == "success"),
                 key=lambda ti: ti.start_date)
    tasks = {ti.task_id: (ti.end_date - ti.start_date).total_seconds() for ti in ran}  # in the order they ran
    states = {ti.task_id: str(ti.state) for ti in instances}
    collect = next(ti for ti in instances if ti.task_id == "collect")
    with psycopg.connect(profile("test").cluster.dsn("airflow")) as conn:
        event_at = conn.execute(
            "SELECT max(e.timestamp) FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE a.uri = %s AND e.timestamp >= %s", (arguments["asset_uri"], collect.start_date)).fetchone()[0]
    return {
        "state": str(dag_run.state), "tasks": tasks, "states": states,
        "asset_event_at": event_at.isoformat() if event_at else None,
        "total_seconds": (event_at - collect.start_date).total_seconds() if event_at else None,
    }


if __name__ == "__main__":
    result = _main(json.loads(sys.argv[1]))
    print(json.dumps(result, default=str))
