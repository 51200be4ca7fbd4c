"""A queue users drive (#19): ``nightshift enqueue``/``requeue``, the ``nightshift.enqueue`` SQL function,
one answer per key per night, and failure reasons that name their cause."""

from __future__ import annotations

import io

import psycopg
import pytest
from rich.console import Console

from nightshift.batch.collect import collect
from nightshift.batch.finalize import finalize_run
from nightshift.batch.ledger import ensure_run
from nightshift.batch.submit import Caps, submit_round
from nightshift.cli import main
from nightshift.deployment import get_workload
from nightshift.report import print_report
from tests.batch_night import run_night
from tests.helpers import assert_every_request_terminal, emulator_backend, queue_states, seed

TICKETS = get_workload("ticket_classification")
W = ("--workload", TICKETS.name)


@pytest.fixture
def tickets(app_db):
    """Six support tickets (ids 1..6), nothing queued."""
    seed(app_db, tickets=6)
    app_db.execute("DELETE FROM app.llm_requests")
    app_db.commit()
    return app_db


def queued_keys(conn, status: str = "pending") -> list[str]:
    return [k for (k,) in conn.execute("SELECT source_key FROM app.llm_requests WHERE workload = %s "
                                       "AND status = %s "
                                       "ORDER BY request_id", (TICKETS.name, status))]


def nightshift(capsys, dsn: str, *args: str) -> tuple[int, str, str]:
    code = main([*args, "--dsn", dsn])
    out, err = capsys.readouterr()
    return code, out, err


def test_enqueue_keys_from_a_file_queues_each_key_once_as_the_key_type_renders_it(tickets, app_dsn, tmp_path,
                                                                                  capsys):
    keys = tmp_path / "keys.txt"
    keys.write_text("3\n 5 \n\n003\n3\n")
    code, out, err = nightshift(capsys, app_dsn, "enqueue", *W, "--keys-file", str(keys))
    assert code == 0, err
    assert "2 queued, 0 already pending" in out
    assert queued_keys(tickets) == ["3", "5"]  # 003 is the bigint 3: the same key

    code, out, _ = nightshift(capsys, app_dsn, "enqueue", *W, "--keys-file", str(keys))
    assert code == 0 and "0 queued, 2 already pending" in out
    assert queued_keys(tickets) == ["3", "5"]


def test_enqueue_refuses_a_key_that_is_not_the_source_key_type_and_queues_nothing(tickets, app_dsn, tmp_path,
                                                                                 capsys):
    keys = tmp_path / "keys.txt"
    keys.write_text("4\nabc\n")
    code, _, err = nightshift(capsys, app_dsn, "enqueue", *W, "--keys-file", str(keys))
    assert code == 2
    assert f"{keys}:2: 'abc'" in err and "bigint" in err and "app.support_tickets.ticket_id" in err
    assert queued_keys(tickets) == []


def test_enqueue_reads_keys_from_stdin(tickets, app_dsn, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("6\n1\n"))
    code, out, err = nightshift(capsys, app_dsn, "enqueue", *W, "--keys-file", "-")
    assert code == 0, err
    assert queued_keys(tickets) == ["6", "1"]  # in the order given


def test_enqueue_where_binds_a_filter_on_a_declared_source_column(tickets, app_dsn, capsys):
    tickets.execute("UPDATE app.support_tickets SET customer_tier = "
                    "CASE WHEN ticket_id IN (2, 4) THEN 'enterprise' "
                    "ELSE 'free' END")
    tickets.commit()
    code, out, err = nightshift(capsys, app_dsn, "enqueue", "--workload", TICKETS.name,
                                "--where", "customer_tier=enterprise", "--where", "ticket_id>=1")
    assert code == 0, err
    assert "2 queued, 0 already pending (of 2 matching source rows)" in out
    assert queued_keys(tickets) == ["2", "4"]

    hostile = "enterprise' OR '1'='1"  # a value, never SQL
    code, out, err = nightshift(capsys, app_dsn, "enqueue", *W, "--where",
                                f"customer_tier={hostile}")
    assert code == 0, err
    assert "0 queued, 0 already pending (of 0 matching source rows)" in out


@pytest.mark.parametrize(("where", "says"), [
    ("customer_email=a@example.com",
     "'customer_email' is not a column workload 'ticket_classification' declares"),
    ("subject~x", "expected COLUMN OP VALUE"),
    ("created_at>=yesterday-ish", "a value is not valid for its column's type"),
])
def test_enqueue_where_refuses_what_it_cannot_bind(tickets, app_dsn, capsys, where, says):
    code, _, err = nightshift(capsys, app_dsn, "enqueue", *W, "--where", where)
    assert code == 2 and says in err, err
    assert queued_keys(tickets) == []


def test_the_sql_function_queues_each_key_once_and_says_how_many(tickets):
    assert tickets.execute("SELECT nightshift.enqueue('ticket_classification', ARRAY['2', '1', '2'])"
                           ).fetchone()[0] == 2
    assert tickets.execute("SELECT nightshift.enqueue('ticket_classification', ARRAY['1', '3'])"
                           ).fetchone()[0] == 1
    assert queued_keys(tickets) == ["2", "1", "3"]
    with pytest.raises(psycopg.errors.NullValueNotAllowed, match="key #2 is NULL"):
        tickets.execute("SELECT nightshift.enqueue('ticket_classification', ARRAY['4', NULL])")
    tickets.rollback()


def test_a_key_inserted_twice_before_a_night_is_submitted_once(tickets, emulator):
    """Raw INSERTs bypass the function: the claim answers the key once and closes the duplicate with it."""
    tickets.execute("INSERT INTO app.llm_requests (workload, source_key) VALUES "
                    "('ticket_classification', '1'), ('ticket_classification', '2'), "
                    "('ticket_classification', '1')")
    tickets.commit()
    night = run_night(tickets, emulator_backend(emulator), TICKETS, emulator=emulator)
    assert night.summary.requests == 2 and night.summary.succeeded == 2
    assert emulator.stats()["batch_requests_total"] == 2  # the API was asked about key 1 once
    rows = tickets.execute("SELECT request_id, source_key, status, answered_by FROM app.llm_requests "
                           "ORDER BY request_id").fetchall()
    assert rows == [(rows[0][0], "1", "done", None), (rows[1][0], "2", "done", None),
                    (rows[2][0], "1", "done", rows[0][0])]
    assert_every_request_terminal(tickets, night.run.run_pk, TICKETS.destination.table,
                                  TICKETS.destination.key)


def _refused_night(conn, emulator):
    """A night whose batch create the API refuses (401): nothing is submitted."""
    emulator.add_fault(kind="status", endpoint="create", status=401, error_type="authentication_error",
                       message="invalid x-api-key")
    run = ensure_run(conn, TICKETS, dag_id="test_refused", airflow_run_id="refused")
    collect(conn, TICKETS, run)
    with pytest.raises(Exception):
        submit_round(conn, emulator_backend(emulator), TICKETS, run, 0, Caps())
    return run, finalize_run(conn, run)


def test_a_request_never_submitted_names_the_cause(app_db, emulator):
    seed(app_db, tickets=3)  # queued as the demo does, by INSERT
    tickets = app_db
    run, summary = _refused_night(tickets, emulator)
    assert summary.failed == {"not_submitted": 3}
    reasons = {e for (e,) in tickets.execute(
        "SELECT DISTINCT error_message FROM nightshift.items WHERE run_pk = %s", (run.run_pk,))}
    assert reasons == {"authentication_error: invalid x-api-key"}
    assert {e for (e,) in tickets.execute("SELECT DISTINCT error FROM app.llm_requests")} == {
        "not_submitted: authentication_error: invalid x-api-key"}
    out = io.StringIO()
    print_report(tickets, Console(file=out, width=200, color_system=None))
    assert "authentication_error: invalid x-api-key" in out.getvalue()


def test_a_request_the_database_stopped_names_the_database_error(app_db, emulator):
    seed(app_db, tickets=2)
    run = ensure_run(app_db, TICKETS, dag_id="test_db_error", airflow_run_id="db_error")
    collect(app_db, TICKETS, run)
    app_db.execute("ALTER TABLE app.support_tickets RENAME COLUMN customer_tier TO tier")  # after collect
    app_db.commit()
    with pytest.raises(psycopg.errors.UndefinedColumn):
        submit_round(app_db, emulator_backend(emulator), TICKETS, run, 0, Caps())
    app_db.rollback()
    assert finalize_run(app_db, run).failed == {"not_submitted": 2}
    (error,) = {e for (e,) in app_db.execute("SELECT DISTINCT error FROM app.llm_requests")}
    assert error.startswith("not_submitted: database_error: UndefinedColumn: column ")
    assert "customer_tier" in error


def test_requeue_puts_refused_requests_back_once_and_leaves_answered_ones(tickets, emulator, app_dsn, capsys):
    tickets.execute("SELECT nightshift.enqueue('ticket_classification', ARRAY['1', '2', '3'])")
    tickets.commit()
    refused, _ = _refused_night(tickets, emulator)
    emulator.clear_faults()

    code, _, err = nightshift(capsys, app_dsn, "requeue", *W, "--status", "deadline_exceeded")
    assert code == 2 and "its failures: not_submitted (3)" in err
    code, out, err = nightshift(capsys, app_dsn, "requeue", *W, "--status", "not_submitted",
                                "--run", str(refused.run_pk))
    assert code == 0, err
    assert "3 key(s) failed not_submitted" in out and "3 queued again, 0 already pending, 0 left alone" in out
    assert queued_keys(tickets) == ["1", "2", "3"]
    code, out, _ = nightshift(capsys, app_dsn, "requeue", *W, "--status", "not_submitted")
    assert "0 queued again, 3 already pending" in out

    night = run_night(tickets, emulator_backend(emulator), TICKETS, emulator=emulator)
    assert night.summary.succeeded == 3
    code, out, _ = nightshift(capsys, app_dsn, "requeue", *W, "--status", "not_submitted")
    assert "0 queued again, 0 already pending, 3 left alone" in out
    assert queue_states(tickets, TICKETS.name) == {"done": 3, "failed": 3}
