"""The model trial DAG through Airflow itself: dag.test() runs its tasks, the deferrable wait, the report."""

from __future__ import annotations

import pytest

from nightshift.dag_ids import trial_dag_id
from nightshift.deployment import get_workload
from tests.batch_night import run_night
from tests.dags.test_batch_dags import FAST, load_dag, task_states
from tests.helpers import destination_rows, emulator_backend, queue_states, seed

pytestmark = pytest.mark.airflow


def test_a_trial_runs_from_the_ui_with_its_params_and_reports(airflow_db, app_db, anthropic_conn):
    workload = get_workload("ticket_classification")
    seed(app_db, tickets=30)
    assert run_night(app_db, emulator_backend(anthropic_conn), workload).summary.succeeded == 30
    destination = destination_rows(app_db, workload.destination.table, workload.destination.key)
    queue = queue_states(app_db, workload.name)
    batches = anthropic_conn.stats()["batches_created"]

    dag = load_dag("nightshift_trial.py", trial_dag_id(workload.name))
    dag_run = dag.test(run_conf={**FAST, "candidate": "claude-sonnet-5-5", "sample": 20, "seed": 5})

    assert str(dag_run.state) == "success", task_states(dag_run)
    assert task_states(dag_run)["report"] == "success"
    trial = app_db.execute("SELECT status, current_model, candidate_model, sample_size, keys_compared, "
                           "keys_agreeing, params ->> 'seed' FROM nightshift.model_trials").fetchall()
    assert trial == [("reported", workload.model, "claude-sonnet-5-5", 20, 20, 20, "5")]
    assert app_db.execute("SELECT count(*) FROM nightshift.trial_ticket_classification").fetchone() == (20,)
    assert anthropic_conn.stats()["batches_created"] == batches + 1
    assert destination_rows(app_db, workload.destination.table, workload.destination.key) == destination
    assert queue_states(app_db, workload.name) == queue


def test_a_trial_without_a_candidate_fails_at_collect_saying_so(airflow_db, app_db, anthropic_conn):
    dag = load_dag("nightshift_trial.py", trial_dag_id("ticket_classification"))
    dag_run = dag.test(run_conf=FAST)
    assert str(dag_run.state) == "failed"
    assert task_states(dag_run)["collect"] == "failed"
    assert app_db.execute("SELECT count(*) FROM nightshift.model_trials").fetchone() == (0,)
