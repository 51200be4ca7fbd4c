"""API faults during each step: rate limits, server errors, overload storms, cut streams, and
responses slower than the client's timeout. Every night must still end with each request
landed exactly once, and the API must hold no batch the ledger does not know."""

from __future__ import annotations

import json

import pytest

from tests.chaos.driver import ChaosNight
from tests.chaos.invariants import assert_nothing_lost_or_doubled, fired, outcomes
from tests.helpers import seed

pytestmark = pytest.mark.chaos

TICKETS_PER_NIGHT = 12  # three batches of four: the wait polls them with list calls
TIMEOUT = 0.5  # the client's timeout in the slow-response scenarios (seconds)

SCENARIOS = {
    # create: refused before any work (429 / 529) or failed after it may have happened (500)
    "create-429-retry-after": dict(kind="status", endpoint="create", status=429, retry_after=0.2, count=3),
    "create-500": dict(kind="status", endpoint="create", status=500, retry_after=0, count=2),
    "create-529-storm": dict(kind="status", endpoint="create", status=529, retry_after=0, count=6),
    "create-slow-after-creating": dict(kind="delay", endpoint="create", seconds=2, after=True, count=1),
    # poll: the trigger's list calls
    "poll-429-retry-after": dict(kind="status", endpoint="list", status=429, retry_after=0.1, count=4),
    "poll-500-storm": dict(kind="status", endpoint="list", status=500, retry_after=0, count=12),
    "poll-529-storm": dict(kind="status", endpoint="list", status=529, retry_after=0, count=9),
    "poll-slow": dict(kind="delay", endpoint="list", seconds=2, count=2),
    # land: the retrieve before reading, and the results stream
    "retrieve-500": dict(kind="status", endpoint="retrieve", status=500, retry_after=0, count=3),
    "results-429-retry-after": dict(kind="status", endpoint="results", status=429, retry_after=0.1, count=2),
    "results-529-storm": dict(kind="status", endpoint="results", status=529, retry_after=0, count=6),
    "results-cut-mid-stream": dict(kind="cut", endpoint="results", after_lines=3, count=2),
    "results-slow": dict(kind="delay", endpoint="results", seconds=2, count=1),
}


@pytest.fixture
def slow_client_conn(anthropic_conn, monkeypatch):
    """The provider connection with a short client timeout, as an impatient deployment has."""
    monkeypatch.setenv("AIRFLOW_CONN_ANTHROPIC_DEFAULT", json.dumps({
        "conn_type": "anthropic", "host": anthropic_conn.url, "password": anthropic_conn.api_key,
        "extra": {"anthropic_client_kwargs": {"timeout": TIMEOUT}}}))
    return anthropic_conn


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_night_survives(scenario, app_db, app_dsn, slow_client_conn, monkeypatch):
    import nightshift.batch.land as land

    monkeypatch.setattr(land, "SLICE", 2)  # a cut stream falls after committed slices
    emulator = slow_client_conn
    seed(app_db, tickets=TICKETS_PER_NIGHT)
    emulator.add_fault(**SCENARIOS[scenario])

    night = ChaosNight(app_dsn)
    run, summary = night.whole_night()

    assert fired(emulator) == [SCENARIOS[scenario]["count"]], "the fault did not fire as often as set"
    assert outcomes(app_db, run.run_pk) == {"succeeded": TICKETS_PER_NIGHT}, night.failures
    assert summary.succeeded == TICKETS_PER_NIGHT
    assert emulator.stats()["batches_created"] == 3  # nothing created twice, nothing adopted wrongly
    assert_nothing_lost_or_doubled(app_db, emulator, run.run_pk)


def test_a_create_that_times_out_and_goes_through_late_is_recorded_as_a_paid_duplicate_not_landed(
        app_db, app_dsn, slow_client_conn):
    """The nastiest create fault: the call times out before the API has even started it, the
    retry creates the batch, and then the first call goes through after all. The API has no
    idempotency key, and a running batch shows no custom_ids, so the duplicate cannot be told
    from another team's batch of the same size until it ends: it is neither landed nor
    cancelled on that likeness. Once it has ended, its results prove it ours, and the night's
    cost includes what it was billed."""
    from tests.helpers import sdk_client

    emulator = slow_client_conn
    emulator.configure(rate=1)  # each batch takes 4 s: landing comes after the late create
    seed(app_db, tickets=TICKETS_PER_NIGHT)
    emulator.add_fault(kind="delay", endpoint="create", seconds=2, count=1)

    night = ChaosNight(app_dsn)
    run, summary = night.whole_night()

    assert fired(emulator) == [1]
    assert emulator.stats()["batches_created"] == 4
    landed = {b for (b,) in app_db.execute("SELECT backend_batch_id FROM nightshift.batches WHERE status = 'landed'")}
    late = [b["id"] for b in emulator.stats()["batches"] if b["id"] not in landed]
    assert len(late) == 1 and sdk_client(emulator).messages.batches.retrieve(late[0]).cancel_initiated_at is None, \
        "a batch was cancelled on its likeness alone"
    (suspect,), = app_db.execute("SELECT backend_batch_id FROM nightshift.suspect_batches").fetchall()
    assert suspect == late[0]
    assert outcomes(app_db, run.run_pk) == {"succeeded": TICKETS_PER_NIGHT}

    emulator.advance(3600)  # the duplicate ends; the next finalize (or landing) of the workload settles it
    night.finalize()
    (duplicate, recovery, billed), = app_db.execute(
        "SELECT backend_batch_id, recovery, billed_usd FROM nightshift.batches WHERE status = 'abandoned'").fetchall()
    assert duplicate == suspect and recovery.startswith("late duplicate of batch #") and "proven" in recovery
    items_cost, warmup, run_cost = app_db.execute(
        "SELECT (SELECT sum(cost_usd) FROM nightshift.items WHERE run_pk = %s), warmup_cost_usd, cost_usd "
        "FROM nightshift.runs WHERE run_pk = %s", (run.run_pk, run.run_pk)).fetchone()
    assert billed > 0 and run_cost == items_cost + warmup + billed  # the night reports what it was billed
    assert_nothing_lost_or_doubled(app_db, emulator, run.run_pk)