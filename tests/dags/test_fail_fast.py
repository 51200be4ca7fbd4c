"""What retrying cannot fix fails the night at its first attempt, naming what to fix, and hands the
requests back to the queue (issue #19: a missing role took 506 s to fail, a wrong key 266 s).

Each night runs through ``dag.test()`` with the DAG's own retries (2) but a retry delay cut to 1 s,
so the old behaviour (every task retried) shows in seconds; what is asserted is attempts and API
calls (the emulator's counters), never elapsed time.
"""

from __future__ import annotations

import json
import socket
from datetime import timedelta

import pytest

from nightshift.deployment import get_workload
from tests.dags.test_batch_dags import FAST, batch_dag, ledger_run, task_states
from tests.helpers import queue_states, seed

pytestmark = pytest.mark.airflow

WORKLOAD = "ticket_classification"
WRONG_KEY = "sk-ant-api03-wrong-key-FAILFAST-0000"


def free_loopback_port() -> int:
    """A loopback port nobody listens on (bound and released: the kernel hands it out again only later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def night(workload):
    """The workload's batch DAG, its retry delay cut to 1 s (the retries themselves stay)."""
    dag = batch_dag(workload)
    for task in dag.tasks:
        task.retry_delay = timedelta(seconds=1)
    return dag


def attempts(dag_run) -> dict[str, int]:
    return {ti.task_id: ti.try_number for ti in dag_run.get_task_instances() if ti.try_number}


def use_anthropic_conn(monkeypatch, host: str, key: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ANTHROPIC_DEFAULT",
                       json.dumps({"conn_type": "anthropic", "host": host, "password": key}))


def released_rows(conn) -> list[tuple[str, str]]:
    return conn.execute("SELECT status, error FROM app.llm_requests WHERE workload = %s ORDER BY request_id",
                        (WORKLOAD,)).fetchall()


def test_a_wrong_api_key_fails_submit_at_its_first_try_and_hands_the_requests_back(
        airflow_db, app_db, emulator, monkeypatch):
    emulator.configure(api_key=emulator.api_key)  # the emulator now accepts only its own key
    use_anthropic_conn(monkeypatch, emulator.url, WRONG_KEY)
    workload = get_workload(WORKLOAD)
    seed(app_db, tickets=6)

    dag_run = night(workload).test(run_conf=FAST)

    states = task_states(dag_run)
    assert states["collect"] == "success" and states["submit"] == "failed", states
    assert attempts(dag_run)["submit"] == 1, attempts(dag_run)
    calls = emulator.stats()["endpoints"]
    assert calls == {"models": {"total": 1, "by_status": {"401": 1}}}, calls  # one call, and the SDK retried nothing
    assert emulator.stats()["batches_created"] == 0
    assert queue_states(app_db, WORKLOAD) == {"pending": 6}
    rows = released_rows(app_db)
    host = emulator.url.removeprefix("http://").rstrip("/")
    for _, error in rows:
        assert error.startswith("not_submitted: the API at http://") and host in error, error
        assert "authentication_error (401)" in error and WRONG_KEY not in error, error
    run = ledger_run(app_db, dag_run)
    items = app_db.execute("SELECT status, error_type, count(*) FROM nightshift.items WHERE run_pk = %s "
                           "GROUP BY 1, 2", (run.run_pk,)).fetchall()
    assert items == [("failed", "not_submitted", 6)]


def test_a_refused_api_url_fails_submit_at_its_first_try_and_hands_the_requests_back(
        airflow_db, app_db, emulator, monkeypatch):
    port = free_loopback_port()
    use_anthropic_conn(monkeypatch, f"http://127.0.0.1:{port}", emulator.api_key)
    workload = get_workload(WORKLOAD)
    seed(app_db, tickets=4)

    dag_run = night(workload).test(run_conf=FAST)

    states = task_states(dag_run)
    assert states["collect"] == "success" and states["submit"] == "failed", states
    assert attempts(dag_run)["submit"] == 1, attempts(dag_run)
    assert queue_states(app_db, WORKLOAD) == {"pending": 4}
    for _, error in released_rows(app_db):
        assert f"the API URL http://127.0.0.1:{port} (connection 'anthropic_default') refused the connection" \
            in error, error


def test_a_wrong_api_key_fails_the_streaming_task_at_its_first_try_and_hands_the_requests_back(
        airflow_db, app_db, emulator, monkeypatch):
    from tests.dags.test_batch_dags import streaming_dag

    emulator.configure(api_key=emulator.api_key)
    use_anthropic_conn(monkeypatch, emulator.url, WRONG_KEY)
    seed(app_db, tickets=5)
    dag = streaming_dag(get_workload(WORKLOAD))
    for task in dag.tasks:
        task.retry_delay = timedelta(seconds=1)

    dag_run = dag.test()

    assert task_states(dag_run) == {"stream_requests": "failed"}
    assert attempts(dag_run) == {"stream_requests": 1}
    assert emulator.stats()["endpoints"] == {"models": {"total": 1, "by_status": {"401": 1}}}
    assert queue_states(app_db, WORKLOAD) == {"pending": 5}
    for _, error in released_rows(app_db):
        assert "authentication_error (401)" in error and WRONG_KEY not in error, error


@pytest.mark.parametrize("refusal", ["role", "database", "port"])
def test_a_database_that_refuses_the_connection_fails_every_task_at_its_first_try(
        airflow_db, app_db, app_dsn, anthropic_conn, monkeypatch, refusal):
    from airflow.sdk.exceptions import AirflowFailException
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from nightshift.operators import CollectRequestsOperator

    workload = get_workload(WORKLOAD)
    seed(app_db, tickets=3)
    app_db.commit()
    params = conninfo_to_dict(app_dsn)
    change, named = {
        "role": ({"user": "nightshift_no_such_role"}, 'role "nightshift_no_such_role" does not exist'),
        "database": ({"dbname": "nightshift_no_such_db"}, 'database "nightshift_no_such_db" does not exist'),
        "port": ({"port": str(free_loopback_port())}, "connection refused"),
    }[refusal]
    broken = make_conninfo(**{**params, **change})
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTSHIFT_DB", "postgresql://" + _url_part(broken))

    dag = night(workload)
    dag_run = dag.test(run_conf=FAST)

    states = task_states(dag_run)
    assert states["collect"] == "failed" and states["finalize"] == "failed", states
    assert set(attempts(dag_run).values()) == {1}, attempts(dag_run)  # collect, finalize, verdict: once each
    assert emulator_calls(anthropic_conn) == 0
    assert queue_states(app_db, WORKLOAD) == {"pending": 3}  # never claimed

    context = {"dag": dag, "run_id": dag_run.run_id, "params": FAST}
    with pytest.raises(AirflowFailException) as failed:
        CollectRequestsOperator(task_id="c", workload=WORKLOAD).execute(context)
    message = str(failed.value)
    assert named in message, message
    assert "connection 'nightshift_db'" in message
    assert f"role {change.get('user', params['user'])!r}" in message
    assert f"database {change.get('dbname', params['dbname'])!r}" in message
    assert f"host {params['host']}:{change.get('port', params['port'])}" in message


def emulator_calls(emulator) -> int:
    return emulator.stats()["requests_total"]


def _url_part(conninfo: str) -> str:
    """``user@host:port/dbname`` from a libpq conninfo (the test cluster has no password)."""
    from psycopg.conninfo import conninfo_to_dict

    p = conninfo_to_dict(conninfo)
    return f"{p['user']}@{p['host']}:{p['port']}/{p['dbname']}"


def test_a_ledger_behind_the_code_fails_the_streaming_task_at_its_first_try_before_any_call(
        airflow_db, app_db, anthropic_conn):
    from tests.dags.test_batch_dags import streaming_dag

    seed(app_db, tickets=3)
    app_db.execute("DELETE FROM nightshift.schema_migrations WHERE version = 14")  # model switches
    app_db.commit()
    dag = streaming_dag(get_workload(WORKLOAD))
    for task in dag.tasks:
        task.retry_delay = timedelta(seconds=1)

    dag_run = dag.test()

    assert task_states(dag_run) == {"stream_requests": "failed"}
    assert attempts(dag_run) == {"stream_requests": 1}
    assert anthropic_conn.stats()["requests_total"] == 0
    assert queue_states(app_db, WORKLOAD) == {"pending": 3}
