"""Time faults: a batch that expires, a run that passes its deadline, and a landing that comes
after the API archived the results (29 days). The emulator's clock is moved, never waited on."""

from __future__ import annotations

import pytest

from nightshift.deployment import get_workload
from tests.chaos.driver import ChaosNight
from tests.chaos.invariants import assert_nothing_lost_or_doubled, outcomes
from tests.helpers import sdk_client, seed

pytestmark = pytest.mark.chaos

TICKETS_PER_NIGHT = 12
DAY = 24 * 3600


def test_an_expired_batch_is_retried_in_the_next_round(app_db, app_dsn, anthropic_conn):
    emulator = anthropic_conn
    emulator.set_speed(0)
    emulator.configure(rate=1 / 36000)  # one request per 10 h: half of each 4-request batch expires

    def expire_round_0(round_):
        if round_ == 0:
            emulator.advance(DAY + 60)
            emulator.configure(rate="inf")  # the retry round's batches end at once

    seed(app_db, tickets=TICKETS_PER_NIGHT)
    night = ChaosNight(app_dsn)
    run, summary = night.whole_night(before_wait=expire_round_0)

    rounds = dict(app_db.execute("SELECT round, count(*) FROM nightshift.batches GROUP BY 1").fetchall())
    assert rounds[0] == 3 and rounds[1] >= 1  # the expired requests went to round 1
    assert outcomes(app_db, run.run_pk) == {"succeeded": TICKETS_PER_NIGHT}
    assert_nothing_lost_or_doubled(app_db, emulator, run.run_pk)


def test_results_archived_before_landing_fail_with_a_clear_reason(app_db, app_dsn, anthropic_conn, caplog):
    emulator = anthropic_conn
    seed(app_db, tickets=TICKETS_PER_NIGHT)
    night = ChaosNight(app_dsn)
    night.start()
    night.wait(night.submit())
    emulator.advance(30 * DAY)  # the land task's retry comes a month late

    night.land()  # no exception: the night goes on and closes
    summary = night.finalize()

    run = night.run(app_db)
    assert outcomes(app_db, run.run_pk) == {"results_archived": TICKETS_PER_NIGHT}
    assert summary.status == "failed"
    message = app_db.execute("SELECT DISTINCT error_message FROM nightshift.items").fetchone()[0]
    assert "are no longer available: the API archives them 29 days after creation" in message
    assert "Traceback" not in caplog.text and "results_archived" in caplog.text
    queue = dict(app_db.execute("SELECT status, count(*) FROM app.llm_requests GROUP BY 1").fetchall())
    assert queue == {"failed": TICKETS_PER_NIGHT}
    assert_nothing_lost_or_doubled(app_db, emulator, run.run_pk)


def night_past_its_deadline(app_db, tickets: int, deadline_seconds: float):
    """A batch night run with ``dag.test()`` that fails at its deadline: its task states, its
    ledger run, and its one batch as the API now has it. (The emulator's clock stands still, so
    a cancelled batch ends at once: ``cancel_delay_seconds`` 0.)"""
    from tests.dags.test_batch_dags import batch_dag, ledger_run, task_states

    seed(app_db, tickets=tickets)
    dag_run = batch_dag(get_workload("ticket_classification")).test(
        run_conf={"poll_interval_seconds": 0.2, "deadline_seconds": deadline_seconds})
    assert str(dag_run.state) == "failed"
    run = ledger_run(app_db, dag_run)
    (batch_id,) = [row[0] for row in app_db.execute(
        "SELECT backend_batch_id FROM nightshift.batches WHERE run_pk = %s", (run.run_pk,))]
    return task_states(dag_run), run, batch_id


@pytest.mark.airflow
def test_a_run_past_its_deadline_cancels_its_batches_and_closes_every_request(airflow_db, app_db, anthropic_conn):
    anthropic_conn.configure(rate=0.0001, cancel_delay_seconds=0)
    anthropic_conn.set_speed(0)
    states, run, batch_id = night_past_its_deadline(app_db, tickets=5, deadline_seconds=2)

    # the wait cancels and waits for the batch to end; land takes what it had processed (nothing here)
    assert states["wait"] == "success" and states["land"] == "success" and states["verdict"] == "failed"
    batch = sdk_client(anthropic_conn).messages.batches.retrieve(batch_id)
    assert batch.processing_status in ("canceling", "ended") and batch.cancel_initiated_at is not None
    assert outcomes(app_db, run.run_pk) == {"deadline_exceeded": 5}
    assert_nothing_lost_or_doubled(app_db, anthropic_conn, run.run_pk)


@pytest.mark.airflow
def test_a_run_waiting_for_room_past_its_deadline_submits_nothing_more(airflow_db, app_db, anthropic_conn, monkeypatch):
    """In a long backfill room may come hours late: a run waiting for it stops at its deadline,
    cancels what it has in flight, and closes every request, submitted or not."""
    monkeypatch.setenv("AIRFLOW__NIGHTSHIFT__MAX_QUEUED_REQUESTS", "12")
    anthropic_conn.configure(rate=1, cancel_delay_seconds=0)
    anthropic_conn.set_speed(0)  # the run's first turn never ends: its second waits for room
    states, run, batch_id = night_past_its_deadline(app_db, tickets=30, deadline_seconds=4)

    assert states["submit"] == "success" and states["wait"] == "success" and states["verdict"] == "failed"
    assert anthropic_conn.stats()["batches_created"] == 1  # the first turn; nothing after the deadline
    assert sdk_client(anthropic_conn).messages.batches.retrieve(batch_id).cancel_initiated_at is not None
    assert outcomes(app_db, run.run_pk) == {"deadline_exceeded": 30}
    messages = dict(app_db.execute("SELECT error_message, count(*) FROM nightshift.items GROUP BY 1").fetchall())
    assert messages["the run's deadline passed before this request was submitted"] == 30 - 12
    assert_nothing_lost_or_doubled(app_db, anthropic_conn, run.run_pk)
