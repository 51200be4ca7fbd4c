"""The demo's nights (``airflow dags test``) leave task logs where the Airflow UI reads them.

The night runs as the demo runs it, in a process of its own; its task logs are then read the way
the API server's log endpoint reads them (``TaskLogReader`` over the metadata DB's task instances).
"""

from __future__ import annotations

import json
import os
import subprocess

from nightshift_dev.localdev.demo import DAGS_TEST
from tests.helpers import seed

DAG_ID = "nightshift_batch_ticket_classification"


def _task_log(run_id: str, task_id: str) -> str:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.log.log_reader import TaskLogReader
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=DAG_ID, run_id=run_id, task_id=task_id).one()
        stream, _ = TaskLogReader().read_log_chunks(ti, ti.try_number, {})
        return "\n".join(str(message.event) for message in stream)


def test_a_demo_night_shows_its_task_logs_in_the_ui(airflow_db, app_db, anthropic_conn):
    seed(app_db, tickets=3)
    result = subprocess.run([*DAGS_TEST, DAG_ID, "-c", json.dumps({"poll_interval_seconds": 0.2})],
                            env=os.environ.copy(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "collected 3 ticket_classification requests" in result.stdout + result.stderr  # the console still has it

    app_db.commit()
    (run_id,) = app_db.execute("SELECT airflow_run_id FROM nightshift.runs WHERE dag_id = %s",
                               (DAG_ID,)).fetchone()
    assert "collected 3 ticket_classification requests" in _task_log(run_id, "collect")
    assert "landed round 0" in _task_log(run_id, "land")
