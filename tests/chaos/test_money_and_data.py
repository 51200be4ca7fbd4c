"""Money and data: never throw away paid work, never spend rounds or money where a retry cannot help.

Each scenario runs a night the way the DAG runs it (``ChaosNight``), with a fault the strict
emulator injects, and ends with the shared invariants.
"""

from __future__ import annotations

import pytest

from nightshift.batch.errors import AccountProblem, SpendLimitReached
from tests.chaos.driver import ChaosNight
from tests.chaos.invariants import assert_every_billed_request_has_a_cost, assert_nothing_lost_or_doubled, fired, outcomes
from tests.helpers import seed

pytestmark = pytest.mark.chaos
TICKETS_PER_NIGHT = 8


def test_item_errors_other_than_invalid_request_and_the_accounts_are_retried(app_db, app_dsn, anthropic_conn):
    """The batch guide: any item error but invalid_request_error can be retried directly."""
    emulator = anthropic_conn
    seed(app_db, tickets=TICKETS_PER_NIGHT)
    for error_type in ("rate_limit_error", "timeout_error", "overloaded_error", "api_error"):
        emulator.add_fault(kind="item_error", error_type=error_type, count=1)
    run, summary = ChaosNight(app_dsn).whole_night()
    assert fired(emulator) == [1, 1, 1, 1]
    assert outcomes(app_db, run.run_pk) == {"succeeded": TICKETS_PER_NIGHT}  # all four went to round 1
    assert summary.status == "succeeded" and summary.rounds == 2
    assert_nothing_lost_or_doubled(app_db, emulator, run.run_pk)


def test_an_account_error_stops_the_night_instead_of_spending_rounds(app_db, app_dsn, anthropic_conn):
    emulator = anthropic_conn
    seed(app_db, tickets=TICKETS_PER_NIGHT)
    emulator.add_fault(kind="item_error", error_type="authentication_error", count=1,
                       message="invalid x-api-key")
    emulator.add_fault(kind="item_error", error_type="overloaded_error", count=2)
    night = ChaosNight(app_dsn)
    run, summary = night.whole_night()
    assert isinstance(night.stopped, AccountProblem) and "1 authentication_error" in str(night.stopped)
    assert emulator.stats()["batches_created"] == 2  # round 0 (4 + 4 requests); no retry round spent
    assert outcomes(app_db, run.run_pk) == {"succeeded": TICKETS_PER_NIGHT - 3, "authentication_error": 1,
                                            "overloaded_error_after_retries": 2}
    assert summary.status == "failed"  # the verdict fails the DAG run and alerts
    assert_nothing_lost_or_doubled(app_db, emulator, run.run_pk)


def test_the_spend_limit_429_fails_the_submit_at_once(app_db, app_dsn, anthropic_conn):
    """A 429 with error_code enforced_spend_limit_reached and no retry-after is not a rate limit."""
    emulator = anthropic_conn
    seed(app_db, tickets=TICKETS_PER_NIGHT)
    emulator.add_fault(kind="spend_limit", endpoint="create")
    night = ChaosNight(app_dsn)
    run, summary = night.whole_night()
    assert isinstance(night.stopped, SpendLimitReached) and "spend limit" in str(night.stopped)
    assert [name for name, _ in night.failures] == ["submit"]  # one attempt: no task retry
    assert emulator.endpoint_calls("create") == 1 and emulator.stats()["batches_created"] == 0
    assert summary.status == "failed" and outcomes(app_db, run.run_pk) == {"not_submitted": TICKETS_PER_NIGHT}
    assert_nothing_lost_or_doubled(app_db, emulator, run.run_pk)


def test_a_paid_batch_that_could_not_be_landed_still_records_its_cost(app_db, app_dsn, anthropic_conn):
    """The destination lost a column after the batch was created: nothing can land, but it was billed."""
    from decimal import Decimal

    from nightshift.batch.costing import usage_of
    from nightshift.costs import price_table
    from tests.chaos.driver import TICKETS
    from tests.helpers import sdk_client

    emulator = anthropic_conn
    seed(app_db, tickets=TICKETS_PER_NIGHT)
    night = ChaosNight(app_dsn)
    night.start()
    batch_ids = night.submit(0)
    night.wait(batch_ids)
    app_db.execute("ALTER TABLE app.ticket_classifications DROP COLUMN rationale")
    app_db.commit()
    with pytest.raises(Exception, match="rationale"):
        night.land(0)
    assert [name for name, _ in night.failures] == ["land"] * 3  # the task's tries
    summary = night.finalize()
    run = night.run(app_db)
    assert outcomes(app_db, run.run_pk) == {"not_landed": TICKETS_PER_NIGHT}
    (reason,) = {m for (m,) in app_db.execute(
        "SELECT DISTINCT error_message FROM nightshift.items WHERE run_pk = %s", (run.run_pk,))}
    assert "rationale" in reason, reason  # the land step's own error, not only "its batch ended" (#19)
    client = sdk_client(emulator)
    billed = Decimal(0)
    for batch_id in batch_ids:
        for result in client.messages.batches.results(batch_id):
            usage = usage_of(result.result.message.usage.model_dump(), TICKETS)
            billed += price_table().cost(usage, result.result.message.model, batch=True, on=run.billed_on)
    recorded, warmup = app_db.execute("SELECT cost_usd, warmup_cost_usd FROM nightshift.runs WHERE run_pk = %s",
                                      (run.run_pk,)).fetchone()
    assert billed > 0 and recorded == billed + warmup  # every billed request has a recorded cost
    assert summary.status == "failed"
    assert_every_billed_request_has_a_cost(app_db, emulator, run.run_pk)


def test_an_older_request_landing_last_never_overwrites_a_newer_one(app_db, app_dsn, anthropic_conn):
    """One ticket queued again after a night claimed it, and taken by an overlapping night (one night
    answers a key once, #19); the older request's result comes back errored and lands a round later
    than the newer one's. The row must be the newer request's (queue order)."""
    from tests.chaos.test_bad_input import queue_request

    emulator = anthropic_conn
    seed(app_db, tickets=TICKETS_PER_NIGHT)
    ticket = app_db.execute("SELECT min(ticket_id) FROM app.support_tickets").fetchone()[0]
    older = app_db.execute("SELECT request_id FROM app.llm_requests WHERE source_key = %s",
                           (str(ticket),)).fetchone()[0]
    first = ChaosNight(app_dsn, airflow_run_id="first")
    first.start()  # claims the older request
    newer = queue_request(app_db, "ticket_classification", str(ticket))
    overlapping, overlapping_summary = ChaosNight(app_dsn, airflow_run_id="overlapping").whole_night()
    assert overlapping_summary.succeeded == 1
    emulator.add_fault(kind="item_error", error_type="overloaded_error", custom_id=rf"r\d+-q{older}", count=1)
    run, summary = first.whole_night()
    assert fired(emulator) == [1] and summary.rounds == 2
    assert outcomes(app_db, run.run_pk) == {"succeeded": TICKETS_PER_NIGHT}
    (writer,) = app_db.execute("SELECT request_id FROM app.ticket_classifications WHERE ticket_id = %s",
                               (ticket,)).fetchone()
    assert writer == newer != older
    for night in (overlapping, run):
        assert_nothing_lost_or_doubled(app_db, emulator, night.run_pk)


async def test_a_poll_crowded_by_another_teams_batches_pages_and_counts_its_calls(app_db, app_dsn, anthropic_conn):
    """Foreign batches of the workspace, newer than the run's, fill the first page of list: the
    wait pages on to its own instead of retrieving them one by one, and paces itself by the calls."""
    from tests.chaos.driver import provider_async_backend, wait_trigger

    emulator = anthropic_conn
    emulator.configure(rate=0.001)  # the run's batches stay in progress
    seed(app_db, tickets=TICKETS_PER_NIGHT * 2)
    night = ChaosNight(app_dsn)
    night.start()
    batch_ids = night.submit(0)  # 4 batches of 4
    emulator.plant_foreign_batches(count=30, request_count=4, created_at_offset_seconds=1)  # newer than ours
    trigger = wait_trigger(batch_ids)
    trigger._active_batches = len(batch_ids)  # what the ledger counts: the page holds 20
    before = {e: emulator.endpoint_calls(e) for e in ("list", "retrieve")}
    async with provider_async_backend() as backend:
        snapshots = await trigger.poll_once(backend)
    assert sorted(s.id for s in snapshots) == sorted(batch_ids)
    made = {e: emulator.endpoint_calls(e) - before[e] for e in ("list", "retrieve")}
    assert made == {"list": 2, "retrieve": 0}  # 20 foreign on page 1, the run's 4 on page 2
    assert trigger.calls_last_poll == 2
    assert emulator.stats()["canceled_batches"] == []  # nobody's batch touched


def frozen_night_half_processed(app_db, app_dsn, emulator) -> tuple[ChaosNight, list[str]]:
    """Two batches of four, each with two requests processed (and billed) and two still waiting."""
    emulator.set_speed(0)
    emulator.configure(rate=1, cancel_delay_seconds=0)
    seed(app_db, tickets=TICKETS_PER_NIGHT)
    night = ChaosNight(app_dsn)
    night.start()
    batch_ids = night.submit(0)
    emulator.advance(2)
    return night, batch_ids


def test_the_deadline_lands_what_was_paid_before_failing_the_night(app_db, app_dsn, anthropic_conn):
    """At the deadline the wait cancels; the requests processed before the cancel are billed, so
    they are landed and costed, and only then does the night fail."""
    from airflow.sdk.exceptions import AirflowFailException

    emulator = anthropic_conn
    night, batch_ids = frozen_night_half_processed(app_db, app_dsn, emulator)
    app_db.execute("UPDATE nightshift.runs SET deadline_at = now() - interval '1 second'")
    app_db.commit()
    try:
        night.wait_as_the_sensor(0)
        night.land(0)
    except AirflowFailException:
        pass  # the DAG's land would be upstream_failed
    summary = night.finalize()
    run = night.run(app_db)
    assert set(emulator.stats()["canceled_batches"]) == set(batch_ids)
    assert outcomes(app_db, run.run_pk) == {"succeeded": 4, "deadline_exceeded": 4}
    assert summary.status == "failed" and "passed its deadline" in app_db.execute(
        "SELECT message FROM nightshift.runs WHERE run_pk = %s", (run.run_pk,)).fetchone()[0]
    assert_every_billed_request_has_a_cost(app_db, emulator, run.run_pk)
    assert_nothing_lost_or_doubled(app_db, emulator, run.run_pk)


def test_batches_cancelled_by_a_killed_wait_are_landed_and_finished_by_the_retried_night(
        app_db, app_dsn, anthropic_conn):
    """A user kills the deferred wait (the trigger's on_kill cancels its batches), then the task is
    retried: what was processed before the cancel lands, what the cancel stopped goes to round 1."""
    import asyncio

    from tests.chaos.driver import wait_trigger

    emulator = anthropic_conn
    night, batch_ids = frozen_night_half_processed(app_db, app_dsn, emulator)
    asyncio.run(wait_trigger(batch_ids).on_kill())
    assert set(emulator.stats()["canceled_batches"]) == set(batch_ids)
    emulator.set_speed(1)
    emulator.configure(rate="inf")
    night.wait(batch_ids)  # the retried wait
    night.land(0)
    run = night.run(app_db)
    assert outcomes(app_db, run.run_pk) == {"succeeded": 4, "canceled": 4}  # the canceled four wait for round 1
    assert night.retries_pending(app_db, run)
    night.wait(night.submit(1))
    night.land(1)
    summary = night.finalize()
    assert outcomes(app_db, run.run_pk) == {"succeeded": TICKETS_PER_NIGHT} and summary.status == "succeeded"
    assert_every_billed_request_has_a_cost(app_db, emulator, run.run_pk)
    assert_nothing_lost_or_doubled(app_db, emulator, run.run_pk)


REFUSE_THE_FIRST_BATCH_ID = """
CREATE SEQUENCE public.chaos_refusals;
CREATE FUNCTION public.chaos_refuse_batch_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.backend_batch_id IS NOT NULL AND OLD.backend_batch_id IS NULL
       AND nextval('public.chaos_refusals') <= %(refusals)s THEN
        RAISE EXCEPTION USING ERRCODE = 'unique_violation',
            MESSAGE = 'duplicate key value violates unique constraint "batches_backend_batch_id_key"';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER chaos_refuse_batch_id BEFORE UPDATE ON nightshift.batches
    FOR EACH ROW EXECUTE FUNCTION public.chaos_refuse_batch_id();
"""


def test_a_failure_to_record_a_created_batch_id_adopts_that_batch_and_never_creates_again(
        app_db, app_dsn, anthropic_conn):
    """The database refuses the UPDATE that records a just-created batch's id (a unique violation, as
    seen when a reset emulator reissued ids). The task's retry must adopt the batch it created, not
    create another, and not take another team's batch of the same size made just after it."""
    emulator = anthropic_conn
    seed(app_db, tickets=TICKETS_PER_NIGHT)
    app_db.execute(REFUSE_THE_FIRST_BATCH_ID.replace("%(refusals)s", "1"))
    app_db.commit()
    emulator.plant_foreign_batches(request_count=TICKETS_PER_NIGHT, created_at_offset_seconds=1,
                                   processing_seconds=1)
    night = ChaosNight(app_dsn)
    night.caps.max_requests = TICKETS_PER_NIGHT
    run, summary = night.whole_night()
    assert [name for name, error in night.failures] == ["submit"] and "unique" in night.failures[0][1]
    created = [b["id"] for b in emulator.stats()["batches"]]
    assert len(created) == 1, f"batches paid for: {created}"
    (created,) = created
    (recorded, recovery), = app_db.execute("SELECT backend_batch_id, recovery FROM nightshift.batches").fetchall()
    assert recorded == created and recovery == f"adopted {created}: the create call's journalled answer"
    assert outcomes(app_db, run.run_pk) == {"succeeded": TICKETS_PER_NIGHT} and summary.status == "succeeded"
    assert_nothing_lost_or_doubled(app_db, emulator, run.run_pk)


@pytest.mark.parametrize("path", ["crashed submit", "timed-out create", "late duplicate"])
def test_another_teams_batch_of_the_same_size_in_the_same_window_is_left_alone(path, app_db, app_dsn,
                                                                               anthropic_conn, monkeypatch):
    """Every recovery path that looks at listed batches (adopting an orphan after a crash, adopting
    after a create that timed out, finding a late duplicate) meets a foreign batch that matches
    the intent's size and window, and is newer, so listed first. It is never adopted nor cancelled;
    the run's own batch is proven by its results' custom_ids."""
    import json

    from tests.chaos.test_process_faults import kill
    from tests.chaos.driver import until

    emulator = anthropic_conn
    seed(app_db, tickets=TICKETS_PER_NIGHT)
    night = ChaosNight(app_dsn)
    night.caps.max_requests = TICKETS_PER_NIGHT
    # still running when a late duplicate is looked for; ended by the time a crashed or timed-out submit retries
    foreign = dict(request_count=TICKETS_PER_NIGHT, created_at_offset_seconds=3,
                   processing_seconds=600 if path == "late duplicate" else 1)
    if path == "crashed submit":
        night.start()
        emulator.add_fault(kind="delay", endpoint="create", seconds=120, after=True, count=1)
        submit = night.in_child("submit", caps={"max_requests": TICKETS_PER_NIGHT})
        until(lambda: emulator.stats()["batches_created"] == 1, "the create call to reach the API", child=submit)
        kill(submit)
        emulator.plant_foreign_batches(**foreign)
        batch_ids = night.submit()  # the task's retry
        night.wait(batch_ids)
        night.land()
        run, summary = night.run(app_db), night.finalize()
    else:
        monkeypatch.setenv("AIRFLOW_CONN_ANTHROPIC_DEFAULT", json.dumps({
            "conn_type": "anthropic", "host": emulator.url, "password": emulator.api_key,
            "extra": {"anthropic_client_kwargs": {"timeout": 0.5}}}))
        if path == "timed-out create":  # the API creates the batch; its answer comes after the timeout
            emulator.add_fault(kind="delay", endpoint="create", seconds=2, after=True, count=1)
        else:  # the first call is held before it creates: the retry creates, then the first goes through
            emulator.configure(rate=1)
            emulator.add_fault(kind="delay", endpoint="create", seconds=2, count=1)
        emulator.plant_foreign_batches(**foreign)
        run, summary = night.whole_night()
        emulator.advance(3600)
        summary = night.finalize()
    stats = emulator.stats()
    (planted,) = [b["id"] for b in stats["foreign_batches"]]
    assert not [b for b in stats["foreign_batches"] if b["canceled"]], "another team's batch was cancelled"
    ledger = {b for (b,) in app_db.execute("SELECT backend_batch_id FROM nightshift.batches")}
    assert planted not in ledger, "another team's batch was taken for the run's own"
    if path != "late duplicate":
        ours = [b["id"] for b in stats["batches"]]
        assert ledger == set(ours) and len(ours) == 1, f"paid {ours}, recorded {ledger}"
    assert outcomes(app_db, run.run_pk) == {"succeeded": TICKETS_PER_NIGHT} and summary.status == "succeeded"
    assert_nothing_lost_or_doubled(app_db, emulator, run.run_pk)
