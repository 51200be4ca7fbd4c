"""The wait trigger, run directly in an event loop as the triggerer runs it."""

from __future__ import annotations

import asyncio
import importlib
import time


from nightshift.batch.collect import collect
from nightshift.batch.ledger import ensure_run
from nightshift.batch.submit import Caps, submit_round
from nightshift.triggers import BatchesEndedTrigger
from nightshift.deployment import get_workload
from tests.helpers import emulator_backend, seed

TICKETS = get_workload("ticket_classification")


def submitted_batches(app_db, emulator, n=6, caps=Caps(max_requests=3)) -> list[str]:
    seed(app_db, tickets=n)
    run = ensure_run(app_db, TICKETS, dag_id="trigger", airflow_run_id="t")
    collect(app_db, TICKETS, run)
    return submit_round(app_db, emulator_backend(emulator), TICKETS, run, 0, caps).batch_ids


def trigger(batch_ids, **overrides) -> BatchesEndedTrigger:
    kwargs = dict(conn_id="anthropic_default", batch_ids=batch_ids, deadline=time.time() + 600, poll_interval=0.05,
                  max_poll_interval=0.2, max_consecutive_failures=3, db_conn_id="nightshift_db")
    return BatchesEndedTrigger(**{**kwargs, **overrides})


async def first_event(t: BatchesEndedTrigger):
    async for event in t.run():
        return event.payload


def ledger_states(app_db) -> dict[str, str | None]:
    app_db.commit()
    return dict(app_db.execute("SELECT backend_batch_id, processing_status FROM nightshift.batches").fetchall())


async def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


def test_the_ledger_follows_the_batches_while_the_trigger_waits(app_db, anthropic_conn):
    anthropic_conn.set_speed(0)  # frozen: nothing ends until the test advances the clock
    anthropic_conn.configure(rate=10)
    batch_ids = submitted_batches(app_db, anthropic_conn)
    app_db.execute("UPDATE nightshift.batches SET processing_status = NULL")
    app_db.commit()

    async def scenario():
        waiting = asyncio.create_task(first_event(trigger(batch_ids)))
        await wait_for(lambda: set(ledger_states(app_db).values()) == {"in_progress"})
        assert not waiting.done()
        anthropic_conn.advance(60)
        return await asyncio.wait_for(waiting, 30)

    event = asyncio.run(scenario())
    assert event["status"] == "ended" and {b["id"] for b in event["batches"]} == set(batch_ids)
    assert set(ledger_states(app_db).values()) == {"ended"}
    counts = app_db.execute("SELECT request_counts FROM nightshift.batches").fetchall()
    assert sum(c[0]["succeeded"] for c in counts) == 6


def test_a_trigger_rebuilt_from_its_serialized_form_carries_on(app_db, anthropic_conn):
    batch_ids = submitted_batches(app_db, anthropic_conn)
    classpath, kwargs = trigger(batch_ids).serialize()
    module, name = classpath.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert asyncio.run(first_event(rebuilt))["status"] == "ended"


def test_transient_poll_errors_are_tolerated(app_db, anthropic_conn):
    batch_ids = submitted_batches(app_db, anthropic_conn, n=3)
    calls_before = anthropic_conn.endpoint_calls("retrieve")
    # 6 x 529: the SDK retries twice per poll, so two whole polls fail before one succeeds
    anthropic_conn.add_fault(kind="status", endpoint="retrieve", status=529, count=6, retry_after=0)
    event = asyncio.run(first_event(trigger(batch_ids)))
    assert event["status"] == "ended"
    assert anthropic_conn.endpoint_calls("retrieve") - calls_before >= 7


def test_polling_that_keeps_failing_ends_the_wait_with_an_error(app_db, anthropic_conn):
    batch_ids = submitted_batches(app_db, anthropic_conn, n=3)
    anthropic_conn.add_fault(kind="status", endpoint="retrieve", status=500, retry_after=0)
    event = asyncio.run(first_event(trigger(batch_ids, max_consecutive_failures=2)))
    assert event["status"] == "error" and "2 in a row" in event["message"]


def test_a_deadline_ends_the_wait_naming_the_unfinished_batches(app_db, anthropic_conn):
    anthropic_conn.set_speed(0)
    anthropic_conn.configure(rate=0.001)
    batch_ids = submitted_batches(app_db, anthropic_conn)
    event = asyncio.run(first_event(trigger(batch_ids, deadline=time.time() + 0.3)))
    assert event["status"] == "deadline" and sorted(event["unfinished"]) == sorted(batch_ids)


def test_many_single_batch_waits_retrieve_their_own_batch_and_share_one_ledger_read(app_db, anthropic_conn,
                                                                                     monkeypatch):
    batch_ids = submitted_batches(app_db, anthropic_conn, n=8, caps=Caps(max_requests=1))
    assert len(batch_ids) == 8
    reads = []
    query = BatchesEndedTrigger._query_ledger_counts

    async def counted(self):
        reads.append(self.batch_ids)
        return await query(self)

    monkeypatch.setattr(BatchesEndedTrigger, "_query_ledger_counts", counted)
    lists_before = anthropic_conn.endpoint_calls("list")

    async def all_waits():
        return await asyncio.gather(*(first_event(trigger([b], poll_interval=5)) for b in batch_ids))

    events = asyncio.run(all_waits())
    assert [e["status"] for e in events] == ["ended"] * 8
    assert anthropic_conn.endpoint_calls("list") == lists_before  # no page of every active batch per poll
    assert len(reads) == 1  # one ledger read for the eight waits of this triggerer
