"""Process faults: the emulator killed mid-batch, the triggerer killed while waiting, the submit
task killed between the create call and recording the id, the land task killed half-way, and
PostgreSQL restarted during a landing transaction. Processes are really killed (SIGKILL), in
child processes, on cues the test observes (never a guessed sleep)."""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest

from emulator.testing import EmulatorServer
from tests.chaos.driver import ChaosNight, first_event, until, wait_trigger
from tests.chaos.invariants import assert_nothing_lost_or_doubled, outcomes
from tests.helpers import seed

pytestmark = pytest.mark.chaos

TICKETS_PER_NIGHT = 12


async def until_async(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0.05)


def destination_count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM app.ticket_classifications").fetchone()[0]


def ledger_statuses(dsn: str) -> set:
    with psycopg.connect(dsn) as conn:
        return {s for (s,) in conn.execute("SELECT processing_status FROM nightshift.batches")}


@pytest.fixture
def own_postgres(monkeypatch):
    """A cluster of this test's own, so restarting it leaves the session's connections alone."""
    import socket

    from nightshift_dev.localdev.schema import apply_schema
    from nightshift_dev.localdev.postgres import LocalCluster
    from tests.conftest import PROFILE

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cluster = LocalCluster(PROFILE.root / "pg-chaos", port)
    cluster.ensure_started()
    dsn = cluster.dsn("nightshift")
    with psycopg.connect(dsn) as conn:
        conn.execute("DROP SCHEMA IF EXISTS app CASCADE")
        conn.execute("DROP SCHEMA IF EXISTS nightshift CASCADE")
        apply_schema(conn)
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTSHIFT_DB", dsn)
    monkeypatch.setenv("AIRFLOW__NIGHTSHIFT__DB_CONN_ID", dsn)
    yield cluster
    cluster.destroy()


def kill(child) -> None:
    child.kill()
    child.wait(timeout=30)
    child.stdout.close()


@pytest.fixture
def own_emulator(tmp_path, monkeypatch):
    """An emulator of this test's own, so killing it leaves the session's alone."""
    server = EmulatorServer(tmp_path / "emulator", rate="inf").start()
    monkeypatch.setenv("AIRFLOW_CONN_ANTHROPIC_DEFAULT", json.dumps(
        {"conn_type": "anthropic", "host": server.url, "password": server.api_key}))
    yield server
    server.stop()


def submitted_and_in_flight(app_db, dsn: str, emulator) -> tuple[ChaosNight, list[str]]:
    """A night whose batches are submitted and stay in progress until the test moves the clock."""
    emulator.set_speed(0)
    emulator.configure(rate=1)
    seed(app_db, tickets=TICKETS_PER_NIGHT)
    night = ChaosNight(dsn)
    night.start()
    return night, night.submit()


def test_emulator_killed_and_restarted_mid_batch(app_db, app_dsn, own_emulator):
    from structlog.testing import capture_logs

    emulator = own_emulator
    night, batch_ids = submitted_and_in_flight(app_db, app_dsn, emulator)

    async def wait_through_an_outage(logs):
        waiting = asyncio.create_task(first_event(wait_trigger(batch_ids, max_poll_interval=0.5,
                                                               max_consecutive_failures=50)))
        await asyncio.wait_for(until_async(lambda: ledger_statuses(app_dsn) == {"in_progress"}), 60)  # polled once
        emulator.kill()
        await asyncio.wait_for(until_async(lambda: any("poll failed" in e["event"] for e in logs)), 60)
        emulator.start()  # same port, same state file: the batches are still there
        emulator.advance(3600)
        return await asyncio.wait_for(waiting, 60)

    with capture_logs() as logs:
        assert asyncio.run(wait_through_an_outage(logs))["status"] == "ended"
    assert any("poll failed" in e["event"] for e in logs)
    night.land()
    night.finalize()
    run = night.run(app_db)
    assert outcomes(app_db, run.run_pk) == {"succeeded": TICKETS_PER_NIGHT}
    assert_nothing_lost_or_doubled(app_db, emulator, run.run_pk)


def test_triggerer_killed_while_waiting_then_the_trigger_is_rebuilt(app_db, app_dsn, anthropic_conn):
    emulator = anthropic_conn
    night, batch_ids = submitted_and_in_flight(app_db, app_dsn, emulator)
    trigger = wait_trigger(batch_ids)
    classpath, kwargs = trigger.serialize()
    app_db.execute("UPDATE nightshift.batches SET processing_status = NULL")
    app_db.commit()
    triggerer = night.in_child("wait", batch_ids=batch_ids)
    until(lambda: ledger_statuses(app_dsn) == {"in_progress"}, "the triggerer's first poll", child=triggerer)
    kill(triggerer)

    emulator.advance(3600)
    module, name = classpath.rsplit(".", 1)
    rebuilt = getattr(__import__(module, fromlist=[name]), name)(**json.loads(json.dumps(kwargs)))
    assert asyncio.run(first_event(rebuilt))["status"] == "ended"
    night.land()
    night.finalize()
    run = night.run(app_db)
    assert outcomes(app_db, run.run_pk) == {"succeeded": TICKETS_PER_NIGHT}
    assert emulator.stats()["batches_created"] == 3
    assert_nothing_lost_or_doubled(app_db, emulator, run.run_pk)


def test_submit_killed_between_the_create_call_and_recording_the_id(app_db, app_dsn, anthropic_conn):
    emulator = anthropic_conn
    seed(app_db, tickets=TICKETS_PER_NIGHT)
    night = ChaosNight(app_dsn)
    night.start()
    # The API creates the batch, then the answer is held: the task dies before it hears the id.
    emulator.add_fault(kind="delay", endpoint="create", seconds=120, after=True, count=1)
    submit = night.in_child("submit", caps={"max_requests": 100})
    until(lambda: emulator.stats()["batches_created"] == 1, "the create call to reach the API", child=submit)
    kill(submit)
    app_db.commit()
    assert app_db.execute("SELECT status, backend_batch_id FROM nightshift.batches").fetchall() == [("intent", None)]

    night.caps.max_requests = 100
    batch_ids = night.submit()  # the task's retry
    assert emulator.stats()["batches_created"] == 1, "the retry paid for the same requests again"
    night.wait(batch_ids)
    night.land()
    night.finalize()
    run = night.run(app_db)
    recovery = app_db.execute("SELECT recovery FROM nightshift.batches").fetchone()[0]
    assert recovery == f"adopted orphan {batch_ids[0]}: its results' custom_ids are this intent's"
    assert outcomes(app_db, run.run_pk) == {"succeeded": TICKETS_PER_NIGHT}
    assert_nothing_lost_or_doubled(app_db, emulator, run.run_pk)


def landing_half_way(dsn: str, emulator, stall_seconds: float):
    """A night landing in a child process, stalled after its first slice of 4 committed: the
    results stream pauses after 6 lines, so the second slice is not complete."""
    with psycopg.connect(dsn) as conn:
        seed(conn, tickets=TICKETS_PER_NIGHT)
    night = ChaosNight(dsn)
    night.start()
    night.caps.max_requests = 100
    night.wait(night.submit())
    emulator.add_fault(kind="cut", endpoint="results", after_lines=6, stall_seconds=stall_seconds, count=1)
    land = night.in_child("land", slice=4)
    until(lambda: destination_count(dsn) == 4, "the first slice to commit", child=land)
    return night, land


def test_land_killed_half_way(app_db, app_dsn, anthropic_conn):
    emulator = anthropic_conn
    night, land = landing_half_way(app_dsn, emulator, stall_seconds=120)
    kill(land)

    night.land()  # the task's retry
    night.finalize()
    run = night.run(app_db)
    assert outcomes(app_db, run.run_pk) == {"succeeded": TICKETS_PER_NIGHT}
    assert_nothing_lost_or_doubled(app_db, emulator, run.run_pk)


def test_cascade_escalation_round_land_killed_half_way(app_db, app_dsn, anthropic_conn):
    """A cascade night (Haiku 5.5 → Sonnet 5.5 on ``other`` and invalid replies): the landing of the
    escalation round is killed after its first slice; its retry lands the rest, each row once, naming the
    model that answered, and every billed attempt keeps its cost."""
    from tests.integration.test_cascade import CASCADE, SONNET, ABOUT_OTHER
    from tests.chaos.invariants import assert_every_billed_request_has_a_cost

    emulator = anthropic_conn
    seed(app_db, tickets=TICKETS_PER_NIGHT)
    app_db.execute("UPDATE app.support_tickets SET subject = 'Other matter: ' || subject "
                   "WHERE ticket_id::text IN "
                   "(SELECT source_key FROM app.llm_requests WHERE request_id = ANY(%s))",
                   (list(ABOUT_OTHER),))
    app_db.commit()
    emulator.add_fault(kind="perturb", mode="not_json", custom_id=r"r1-q(4|7)", count=2)
    night = ChaosNight(app_dsn, workload=CASCADE)
    night.start()
    night.caps.max_requests = 100
    night.wait(night.submit(0))
    night.land(0)
    night.wait(night.submit(1))
    emulator.add_fault(kind="cut", endpoint="results", after_lines=3, stall_seconds=120, count=1)
    land = night.in_child("land", round=1, slice=2)

    def sonnet_rows() -> int:
        with psycopg.connect(app_dsn) as conn:
            return conn.execute("SELECT count(*) FROM app.ticket_classifications WHERE model = %s",
                                (SONNET,)).fetchone()[0]

    until(lambda: sonnet_rows() == 2, "the escalation round's first slice to commit", child=land)
    kill(land)

    night.land(1)  # the task's retry
    summary = night.finalize()
    run = night.run(app_db)
    assert outcomes(app_db, run.run_pk) == {"succeeded": TICKETS_PER_NIGHT}
    escalated = app_db.execute("SELECT count(*) FROM nightshift.attempts WHERE run_pk = %s "
                               "AND error_type = 'escalated'", (run.run_pk,)).fetchone()[0]
    assert sonnet_rows() == escalated == summary.cost_by_model[SONNET]["items_answered"] >= 4
    assert_nothing_lost_or_doubled(app_db, emulator, run.run_pk)
    assert_every_billed_request_has_a_cost(app_db, emulator, run.run_pk)


def test_postgres_restarted_during_a_landing_transaction(own_postgres, anthropic_conn):
    emulator, dsn = anthropic_conn, own_postgres.dsn("nightshift")
    night, land = landing_half_way(dsn, emulator, stall_seconds=8)  # time to take the lock below
    # Hold the destination table so the second slice's transaction blocks inside it ...
    blocker = psycopg.connect(dsn)
    blocker.execute("LOCK TABLE app.ticket_classifications IN EXCLUSIVE MODE")
    with psycopg.connect(dsn, autocommit=True) as watch:
        until(lambda: watch.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        ).fetchone()[0] >= 1, "a later slice's transaction to block on the table", child=land)
    # ... and restart the server under it.
    own_postgres.restart()
    assert land.wait(timeout=60) != 0, "the landing transaction should have died with the server"
    land.stdout.close()
    blocker.close()

    night.land()  # the task's retry, on a fresh connection
    night.finalize()
    with psycopg.connect(dsn) as conn:
        run = night.run(conn)
        assert outcomes(conn, run.run_pk) == {"succeeded": TICKETS_PER_NIGHT}
        assert_nothing_lost_or_doubled(conn, emulator, run.run_pk)
