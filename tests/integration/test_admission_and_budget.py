"""Many runs in flight: the processing-queue cap across runs, and the shared poll budget."""

from __future__ import annotations

import asyncio

import pytest

from nightshift.batch.collect import collect
from nightshift.batch.ledger import ensure_run, in_flight_batch_ids, record_batch_state
from nightshift.batch.polling import budgeted_interval, stagger
from nightshift.batch.submit import Caps, NotAdmitted, submit_round
from nightshift.triggers import AdmissionTrigger
from nightshift.deployment import get_workload
from tests.helpers import emulator_backend, seed

TICKETS = get_workload("ticket_classification")
CAPS = Caps(max_requests=100, max_queued=10)


def collected_run(app_db, name):
    run = ensure_run(app_db, TICKETS, dag_id="admission", airflow_run_id=name)
    collect(app_db, TICKETS, run, limit=8)
    return run


def test_a_run_waits_while_the_queue_cap_is_taken_by_another(app_db, emulator):
    seed(app_db, tickets=16)
    backend = emulator_backend(emulator)
    first, second = collected_run(app_db, "first"), collected_run(app_db, "second")
    submitted = submit_round(app_db, backend, TICKETS, first, 0, CAPS)
    with pytest.raises(NotAdmitted, match="8 more requests would make 16 queued across all runs, over the cap of 10"):
        submit_round(app_db, backend, TICKETS, second, 0, CAPS)
    assert emulator.stats()["batches_created"] == 1
    record_batch_state(app_db, submitted.batch_ids[0], "ended", {"succeeded": 8}, None)  # as the trigger records it
    app_db.commit()
    assert len(submit_round(app_db, backend, TICKETS, second, 0, CAPS).batch_ids) == 1


def test_a_night_larger_than_the_cap_goes_in_turns_and_its_admission_watches_its_own_batch(
        app_db, anthropic_conn):
    emulator = anthropic_conn
    emulator.set_speed(0)  # frozen: the first batch stays in progress until the test moves the clock
    emulator.configure(rate=1)
    seed(app_db, tickets=8)
    run = collected_run(app_db, "bigger than the queue")
    backend = emulator_backend(emulator)
    with pytest.raises(NotAdmitted, match="3 more requests would make 8 queued"):
        submit_round(app_db, backend, TICKETS, run, 0, Caps(max_queued=5))  # split: 5 now, 3 after
    own = in_flight_batch_ids(app_db, run)
    assert len(own) == emulator.stats()["batches_created"] == 1
    trigger = AdmissionTrigger(db_conn_id="nightshift_db", needed=3, cap=5, poll_interval=0.05,
                               conn_id="anthropic_default", own_batch_ids=own)
    # Nothing else watches the run's first batch while its submit waits: the trigger must.
    assert asyncio.run(trigger.record_own_batches_ended()) is False  # still in progress
    emulator.advance(3600)
    event = asyncio.run(asyncio.wait_for(anext(trigger.run()), 30))
    assert event.payload == {"status": "admitted", "queued": 0}
    assert in_flight_batch_ids(app_db, run) == []
    resumed = submit_round(app_db, backend, TICKETS, run, 0, Caps(max_queued=5))
    assert len(resumed.batch_ids) == emulator.stats()["batches_created"] == 2
    app_db.commit()
    assert app_db.execute("SELECT array_agg(request_count ORDER BY seq) FROM nightshift.batches WHERE run_pk = %s",
                          (run.run_pk,)).fetchone()[0] == [5, 3]


def test_the_admission_trigger_fires_once_there_is_room(app_db, emulator):
    seed(app_db, tickets=8)
    submitted = submit_round(app_db, emulator_backend(emulator), TICKETS, collected_run(app_db, "taken"), 0, CAPS)
    trigger = AdmissionTrigger(db_conn_id="nightshift_db", needed=8, cap=10, poll_interval=0.05)

    assert asyncio.run(trigger.queued()) == 8  # 8 + 8 > 10: the trigger keeps waiting
    record_batch_state(app_db, submitted.batch_ids[0], "ended", {"succeeded": 8}, None)
    app_db.commit()
    event = asyncio.run(asyncio.wait_for(anext(trigger.run()), 10))
    assert event.payload == {"status": "admitted", "queued": 0}


def test_the_admission_trigger_stops_waiting_at_the_runs_deadline(app_db, emulator):
    import time

    seed(app_db, tickets=8)
    submit_round(app_db, emulator_backend(emulator), TICKETS, collected_run(app_db, "taken"), 0, CAPS)
    trigger = AdmissionTrigger(db_conn_id="nightshift_db", needed=8, cap=10, poll_interval=3600,
                               deadline=time.time() + 0.5)
    assert AdmissionTrigger(**trigger.serialize()[1]).deadline == trigger.deadline  # survives a restart
    # The queue stays full and the poll interval is an hour: only the deadline can end the wait.
    event = asyncio.run(asyncio.wait_for(anext(trigger.run()), 30))
    assert event.payload == {"status": "deadline"}


@pytest.mark.parametrize(("waits", "expected"), [(1, 60.0), (30, 60.0), (300, 600.0), (600, 1200.0)])
def test_the_poll_budget_stretches_the_interval_with_the_number_of_waits(waits, expected):
    assert budgeted_interval(60.0, waits, budget_rpm=30) == expected


def test_stagger_spreads_waits_and_is_stable():
    offsets = [stagger([f"msgbatch_{i}"], 100.0) for i in range(300)]
    assert all(0 <= o < 100 for o in offsets)
    assert offsets == [stagger([f"msgbatch_{i}"], 100.0) for i in range(300)]
    assert len({round(o) for o in offsets}) > 50  # spread, not clumped


def test_the_batch_api_budget_grants_its_limit_per_window_then_says_how_long_to_wait(app_db):
    take = "SELECT nightshift.take_batch_api_call(%s, %s)"
    granted = [app_db.execute(take, (3, 60.0)).fetchone()[0] for _ in range(3)]
    app_db.commit()
    assert granted == [0, 0, 0]
    wait = app_db.execute(take, (3, 60.0)).fetchone()[0]
    assert 59 < wait <= 60  # until the oldest of the three leaves the window
    assert app_db.execute(take, (4, 60.0)).fetchone()[0] == 0  # a larger budget still has room
    assert app_db.execute("SELECT count(*) FROM nightshift.batch_api_calls").fetchone()[0] == 4


def test_only_batch_endpoint_calls_spend_the_budget_and_retries_count(app_db, app_dsn, emulator):
    from nightshift.batch.budget import BatchApiBudget, LedgerCallBudget
    from emulator.testing import message_params

    backend = emulator_backend(emulator, call_budget=LedgerCallBudget(BatchApiBudget(100, 60.0), app_dsn))
    backend.create_message(message_params("not a batch call"))
    assert list(backend.recent_batches()) == []
    emulator.add_fault(kind="status", endpoint="list", status=529, count=1, retry_after=0)
    assert list(backend.recent_batches()) == []  # refused once, retried by the SDK: two calls
    app_db.commit()
    assert app_db.execute("SELECT count(*) FROM nightshift.batch_api_calls").fetchone()[0] == 3
    assert emulator.endpoint_calls("list") == 3


def test_budgeted_backends_keep_no_ledger_connection_open_between_calls(app_db, app_dsn, emulator):
    from nightshift.batch.budget import APPLICATION_NAME, BatchApiBudget, LedgerCallBudget

    # A task makes a backend and drops it without closing; many runs in one process made
    # hundreds of idle budget connections this way until the cluster ran out of clients.
    backends = [emulator_backend(emulator, call_budget=LedgerCallBudget(BatchApiBudget(100, 60.0), app_dsn))
                for _ in range(20)]
    for backend in backends:
        list(backend.recent_batches())
    app_db.commit()
    taken = app_db.execute("SELECT count(*) FROM nightshift.batch_api_calls").fetchone()[0]
    open_ = app_db.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                           (APPLICATION_NAME,)).fetchone()[0]
    assert (taken, open_) == (20, 0)


def test_a_backend_without_a_budget_leaves_its_client_alone(emulator):
    backend = emulator_backend(emulator)
    assert list(backend.recent_batches()) == []
    assert backend.client._client.event_hooks["request"] == []
