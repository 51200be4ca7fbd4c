"""A destination that does not fit its workload fails the night at collect, at its first attempt and
before any API call (#19: the batch was paid for, then land failed three times on a missing column)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from nightshift.deployment import get_workload
from tests.dags.test_batch_dags import FAST, streaming_dag, task_states
from tests.dags.test_fail_fast import attempts, night
from tests.helpers import queue_states, seed

pytestmark = pytest.mark.airflow

WORKLOAD = "ticket_classification"


def test_a_missing_destination_column_fails_collect_once_with_no_batch_and_no_call(
        airflow_db, app_db, anthropic_conn):
    seed(app_db, tickets=4)
    app_db.execute("ALTER TABLE app.ticket_classifications DROP COLUMN model")
    app_db.commit()

    dag_run = night(get_workload(WORKLOAD)).test(run_conf=FAST)

    states = task_states(dag_run)
    assert states["collect"] == "failed" and states["submit"] == "upstream_failed", states
    assert attempts(dag_run)["collect"] == 1  # AirflowFailException: no retry burned on what a retry cannot fix
    stats = anthropic_conn.stats()
    assert (stats["batches_created"], stats["requests_total"]) == (0, 0), stats["endpoints"]
    assert queue_states(app_db, WORKLOAD) == {"pending": 4}  # never claimed: tomorrow's night takes them


def test_the_streaming_dag_fails_on_the_same_mismatch_once_before_any_call(airflow_db, app_db, anthropic_conn):
    seed(app_db, tickets=4)
    app_db.execute("ALTER TABLE app.ticket_classifications ALTER COLUMN model TYPE integer USING NULL")
    app_db.commit()
    dag = streaming_dag(get_workload(WORKLOAD))
    for task in dag.tasks:
        task.retry_delay = timedelta(seconds=1)

    dag_run = dag.test()

    assert str(dag_run.state) == "failed"
    assert set(attempts(dag_run).values()) == {1}, attempts(dag_run)
    assert anthropic_conn.stats()["requests_total"] == 0
    assert queue_states(app_db, WORKLOAD) == {"pending": 4}
