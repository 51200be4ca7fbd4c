"""The batch DAGs through Airflow itself: dag.test() runs tasks, deferral and the trigger."""

from __future__ import annotations

import psycopg
import pytest

from nightshift.dag_ids import batch_dag_id, streaming_dag_id
from nightshift.paths import PROJECT_ROOT
from nightshift.deployment import get_workload
from tests.helpers import assert_every_request_terminal, queue_states, seed

pytestmark = pytest.mark.airflow

FAST = {"poll_interval_seconds": 0.2}


def load_dag(filename: str, dag_id: str):
    """The DAG as the dag-processor sees it: parsed from its file in the DAGs folder."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / filename)).get_dag(dag_id)
    assert dag is not None, f"{dag_id} not found in dags/{filename}"
    return dag


def batch_dag(workload):
    return load_dag("nightshift_batch.py", batch_dag_id(workload.name))


def streaming_dag(workload):
    return load_dag("nightshift_streaming.py", streaming_dag_id(workload.name))


def metadata_db(pg_cluster) -> psycopg.Connection:
    return psycopg.connect(pg_cluster.dsn("airflow"), autocommit=True)


def asset_events(pg_cluster, uri: str) -> int:
    with metadata_db(pg_cluster) as conn:
        return conn.execute("SELECT count(*) FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.uri = %s",
                            (uri,)).fetchone()[0]


def queued_for(pg_cluster, dag_id: str) -> int:
    with metadata_db(pg_cluster) as conn:
        return conn.execute("SELECT count(*) FROM asset_dag_run_queue WHERE target_dag_id = %s",
                            (dag_id,)).fetchone()[0]


def task_states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def ledger_run(conn, dag_run):
    from nightshift.batch.ledger import get_run

    return get_run(conn, dag_id=dag_run.dag_id, airflow_run_id=dag_run.run_id)


@pytest.mark.parametrize("workload_name", ["ticket_classification", "product_enrichment"])
def test_batch_night_end_to_end_publishes_the_asset_downstream_consumes(
        airflow_db, app_db, anthropic_conn, pg_cluster, workload_name):
    workload = get_workload(workload_name)
    seed(app_db, tickets=30, products=30, bad_every=10)
    events_before = asset_events(pg_cluster, workload.asset_uri)

    dag_run = batch_dag(workload).test(run_conf={**FAST, "max_requests_per_batch": 12})

    assert str(dag_run.state) == "success", task_states(dag_run)
    states = task_states(dag_run)
    assert states["finalize"] == "success" and states["retry_1.submit"] == "skipped"
    run = ledger_run(app_db, dag_run)
    assert_every_request_terminal(app_db, run.run_pk, workload.destination.table, workload.destination.key)
    assert queue_states(app_db, workload_name) == {"done": 27, "failed": 3}
    assert anthropic_conn.stats()["batches_created"] == 3
    assert asset_events(pg_cluster, workload.asset_uri) == events_before + 1
    assert queued_for(pg_cluster, "nightly_insights") >= 1


def test_a_night_larger_than_the_queue_cap_lands_whole_in_turns(airflow_db, app_db, anthropic_conn, monkeypatch):
    """Each turn's submit defers until the run's own previous batch ends; nothing waits forever."""
    monkeypatch.setenv("AIRFLOW__NIGHTSHIFT__MAX_QUEUED_REQUESTS", "12")
    workload = get_workload("ticket_classification")
    seed(app_db, tickets=30)

    dag_run = batch_dag(workload).test(run_conf=FAST)

    assert str(dag_run.state) == "success", task_states(dag_run)
    run = ledger_run(app_db, dag_run)
    assert_every_request_terminal(app_db, run.run_pk, workload.destination.table, workload.destination.key)
    assert queue_states(app_db, workload.name) == {"done": 30}
    assert app_db.execute("SELECT array_agg(request_count ORDER BY seq) FROM nightshift.batches WHERE run_pk = %s",
                          (run.run_pk,)).fetchone()[0] == [12, 12, 6]
    assert anthropic_conn.stats()["batches_created"] == 3


def test_downstream_dag_runs_unchanged_after_a_batch_night(airflow_db, app_db, anthropic_conn):
    seed(app_db, tickets=12)
    assert str(batch_dag(get_workload("ticket_classification")).test(run_conf=FAST).state) == "success"
    downstream = load_dag("nightly_insights.py", "nightly_insights")
    assert str(downstream.test().state) == "success"
    labels = app_db.execute("SELECT sum(value) FROM app.nightly_insights WHERE metric = 'tickets_by_label'").fetchone()
    assert labels[0] == 12


def test_streaming_dag_end_to_end(airflow_db, app_db, anthropic_conn, pg_cluster):
    workload = get_workload("ticket_classification")
    seed(app_db, tickets=8)
    before = asset_events(pg_cluster, workload.asset_uri)
    dag_run = streaming_dag(workload).test()
    assert str(dag_run.state) == "success"
    assert queue_states(app_db, workload.name) == {"done": 8}
    assert asset_events(pg_cluster, workload.asset_uri) == before + 1


def test_an_empty_night_skips_cleanly_without_an_asset_event(airflow_db, app_db, anthropic_conn, pg_cluster):
    workload = get_workload("ticket_classification")
    before = asset_events(pg_cluster, workload.asset_uri)
    dag_run = batch_dag(workload).test(run_conf=FAST)
    assert str(dag_run.state) == "success"
    states = task_states(dag_run)
    assert states.pop("verdict") == "success"
    assert set(states.values()) == {"skipped"}
    assert asset_events(pg_cluster, workload.asset_uri) == before
    assert anthropic_conn.stats()["batches_created"] == 0


def test_clearing_and_rerunning_each_task_pays_nothing_and_writes_nothing_twice(airflow_db, app_db, anthropic_conn):
    from nightshift.operators import (CollectRequestsOperator, FinalizeRunOperator, LandResultsOperator,
                                      SubmitBatchesOperator)
    from tests.helpers import destination_rows

    workload = get_workload("ticket_classification")
    seed(app_db, tickets=20)
    dag = batch_dag(workload)
    dag_run = dag.test(run_conf={**FAST, "max_requests_per_batch": 7})
    rows = destination_rows(app_db, "app.ticket_classifications", "ticket_id")
    batches_created = anthropic_conn.stats()["batches_created"]

    context = {"dag": dag, "run_id": dag_run.run_id, "params": {**FAST, "max_requests_per_batch": 7}}
    for operator in (CollectRequestsOperator(task_id="c", workload=workload.name),
                     SubmitBatchesOperator(task_id="s", workload=workload.name),
                     LandResultsOperator(task_id="l", workload=workload.name),
                     FinalizeRunOperator(task_id="f", workload=workload.name)):
        operator.execute(context)

    assert anthropic_conn.stats()["batches_created"] == batches_created == 3
    assert destination_rows(app_db, "app.ticket_classifications", "ticket_id") == rows
    assert_every_request_terminal(app_db, ledger_run(app_db, dag_run).run_pk, "app.ticket_classifications", "ticket_id")
