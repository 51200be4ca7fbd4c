"""The batch pipeline's steps against real Postgres and the emulator, through the official SDK."""

from __future__ import annotations

import json

import pytest

from nightshift.batch.collect import collect
from nightshift.batch.finalize import finalize_run
from nightshift.batch.land import land_round
from nightshift.batch.ledger import batches, ensure_run
from nightshift.batch.submit import Caps, submit_round
from nightshift.streaming import run_streaming
from nightshift.deployment import get_workload
from tests.batch_night import run_night, wait_until_ended
from tests.helpers import assert_every_request_terminal, destination_rows, queue_states, emulator_backend, seed

TICKETS = get_workload("ticket_classification")
PRODUCTS = get_workload("product_enrichment")


def item_statuses(conn, run_pk) -> dict[str, int]:
    return dict(conn.execute("SELECT coalesce(error_type, status), count(*) FROM nightshift.items "
                             "WHERE run_pk = %s GROUP BY 1", (run_pk,)).fetchall())


def created_batches(emulator) -> int:
    return emulator.stats()["batches_created"]


@pytest.mark.parametrize("workload", [TICKETS, PRODUCTS], ids=lambda w: w.name)
def test_a_night_lands_every_request(app_db, emulator, workload):
    seed(app_db, tickets=60, products=60, bad_every=20)
    night = run_night(app_db, emulator_backend(emulator), workload)
    assert night.summary.requests == 60
    assert night.summary.succeeded == 57
    assert night.summary.failed == {"invalid_input": 3}
    assert night.summary.status == "succeeded"
    assert_every_request_terminal(app_db, night.run.run_pk, workload.destination.table, workload.destination.key)
    assert queue_states(app_db, workload.name) == {"done": 57, "failed": 3}
    versions = app_db.execute(f"SELECT DISTINCT prompt_version, model FROM {workload.destination.table}").fetchall()
    assert versions == [(workload.prompt_version, workload.model)]


def test_batch_rows_equal_streaming_rows_for_the_same_replies(app_db, emulator):
    """Row-for-row parity: the emulator answers the same params identically on both paths."""
    seed(app_db, tickets=25, products=15, bad_every=10)
    backend = emulator_backend(emulator)
    for workload in (TICKETS, PRODUCTS):
        run_streaming(app_db, backend, workload, claimer="stream")
    streamed = {w.name: destination_rows(app_db, w.destination.table, w.destination.key) for w in (TICKETS, PRODUCTS)}
    app_db.execute("TRUNCATE app.ticket_classifications, app.product_enrichments")
    app_db.execute("UPDATE app.llm_requests SET status = 'pending', error = NULL, claimed_by = NULL")
    app_db.commit()
    for workload in (TICKETS, PRODUCTS):
        run_night(app_db, backend, workload)
        batched = destination_rows(app_db, workload.destination.table, workload.destination.key)
        assert batched == streamed[workload.name]
        assert len(batched) > 0


def test_a_night_is_split_at_the_request_cap(app_db, emulator):
    seed(app_db, tickets=23)
    night = run_night(app_db, emulator_backend(emulator), TICKETS, caps=Caps(max_requests=5))
    rows = batches(app_db, night.run)
    assert [b.request_count for b in rows] == [5, 5, 5, 5, 3]
    assert created_batches(emulator) == 5
    assert night.summary.succeeded == 23


def test_a_night_is_split_at_the_byte_cap_measured_on_the_real_body(app_db, emulator):
    from nightshift.batch.body import encode_request
    from nightshift.workloads.requests import build_params

    seed(app_db, tickets=12)
    row = dict(zip(["ticket_id", "subject", "body", "customer_tier"], app_db.execute(
        "SELECT ticket_id, subject, body, customer_tier FROM app.support_tickets LIMIT 1").fetchone()))
    cap = 3 * len(encode_request("r1-q1", build_params(TICKETS, row)))
    night = run_night(app_db, emulator_backend(emulator), TICKETS, caps=Caps(max_bytes=cap))
    rows = batches(app_db, night.run)
    assert len(rows) >= 4
    assert all(b.body_bytes <= cap for b in rows)
    assert sum(b.request_count for b in rows) == 12
    assert night.summary.succeeded == 12


def test_an_empty_night_is_quiet(app_db, emulator):
    night = run_night(app_db, emulator_backend(emulator), TICKETS)
    assert night.summary.status == "empty" and night.summary.requests == 0
    assert created_batches(emulator) == 0


def test_retry_rounds_recover_item_level_faults(app_db, emulator):
    emulator.add_fault(kind="item_error", error_type="overloaded_error", custom_id=r".*-q(1|2|5|6|7|8)", count=6)
    emulator.add_fault(kind="item_error", error_type="api_error", custom_id=r".*-q(3|4)", count=2)
    seed(app_db, tickets=20)
    night = run_night(app_db, emulator_backend(emulator), TICKETS)
    assert night.summary.succeeded == 20, item_statuses(app_db, night.run.run_pk)
    assert night.submitted_rounds == [0, 1]
    retried = batches(app_db, night.run, 1)
    assert sum(b.request_count for b in retried) == 8  # only the failed items went again
    assert_every_request_terminal(app_db, night.run.run_pk, "app.ticket_classifications", "ticket_id")


def test_expiry_and_invalid_requests_are_recorded_and_the_rest_lands(app_db, emulator):
    emulator.add_fault(kind="item_error", error_type="invalid_request_error", custom_id=r".*-q(1|2)")
    seed(app_db, tickets=10)
    backend = emulator_backend(emulator)
    run = ensure_run(app_db, TICKETS, dag_id="test", airflow_run_id="expiry")
    collect(app_db, TICKETS, run)
    emulator.configure(rate=0.0001)  # requests per virtual second: nothing finishes on its own
    emulator.set_speed(0)
    first = submit_round(app_db, backend, TICKETS, run, 0, Caps())
    emulator.advance(25 * 3600)  # past the 24 h expiry
    wait_until_ended(backend, first.batch_ids)
    land_round(app_db, backend, TICKETS, run, 0)
    emulator.configure(rate="inf")
    second = submit_round(app_db, backend, TICKETS, run, 1, Caps())
    wait_until_ended(backend, second.batch_ids)
    land_round(app_db, backend, TICKETS, run, 1)
    summary = finalize_run(app_db, run)
    assert summary.failed == {"invalid_request": 2}
    assert summary.succeeded == 8
    assert_every_request_terminal(app_db, run.run_pk, "app.ticket_classifications", "ticket_id")


def test_retries_exhausted_end_as_failed_with_the_last_reason(app_db, emulator):
    emulator.add_fault(kind="item_error", error_type="overloaded_error", custom_id=r".*-q1")
    seed(app_db, tickets=4)
    night = run_night(app_db, emulator_backend(emulator), TICKETS)
    assert night.submitted_rounds == [0, 1, 2]
    assert night.summary.failed == {"overloaded_error_after_retries": 1}
    error = app_db.execute("SELECT error FROM app.llm_requests WHERE status = 'failed'").fetchone()[0]
    assert error.startswith("overloaded_error_after_retries: no retry round left")


def test_running_every_step_again_changes_nothing(app_db, emulator):
    seed(app_db, tickets=15)
    backend = emulator_backend(emulator)
    night = run_night(app_db, backend, TICKETS, caps=Caps(max_requests=4))
    before_rows = destination_rows(app_db, "app.ticket_classifications", "ticket_id")
    before_batches = created_batches(emulator)
    run = night.run
    assert collect(app_db, TICKETS, run) == 15
    assert submit_round(app_db, backend, TICKETS, run, 0, Caps(max_requests=4)).submitted_requests == 0
    land_round(app_db, backend, TICKETS, run, 0)
    finalize_run(app_db, run)
    assert created_batches(emulator) == before_batches == 4
    assert destination_rows(app_db, "app.ticket_classifications", "ticket_id") == before_rows
    assert_every_request_terminal(app_db, run.run_pk, "app.ticket_classifications", "ticket_id")


def test_land_cut_half_way_lands_every_result_exactly_once_on_rerun(app_db, emulator, monkeypatch):
    import nightshift.batch.land as land

    monkeypatch.setattr(land, "SLICE", 10)  # several slices, so the cut falls after some committed ones
    seed(app_db, tickets=50)
    backend = emulator_backend(emulator, max_retries=0)
    run = ensure_run(app_db, TICKETS, dag_id="test", airflow_run_id="cut")
    collect(app_db, TICKETS, run)
    submitted = submit_round(app_db, backend, TICKETS, run, 0, Caps())
    wait_until_ended(backend, submitted.batch_ids)
    emulator.add_fault(kind="cut", after_lines=25, count=1)
    with pytest.raises(Exception):
        land_round(app_db, backend, TICKETS, run, 0)
    landed_before = app_db.execute("SELECT count(*) FROM app.ticket_classifications").fetchone()[0]
    assert landed_before == 20  # two whole slices committed, the third rolled back
    land_round(app_db, backend, TICKETS, run, 0)
    summary = finalize_run(app_db, run)
    assert summary.succeeded == 50
    assert_every_request_terminal(app_db, run.run_pk, "app.ticket_classifications", "ticket_id")


def test_a_key_queued_three_times_is_one_request_landed_once_by_concurrent_slices(app_db, emulator,
                                                                                  monkeypatch):
    import nightshift.batch.land as land

    monkeypatch.setattr(land, "SLICE", 3)  # 2 writers: neighbouring slices land at the same time
    seed(app_db, products=12)
    for _ in range(2):  # every product changed twice more: three queued requests per key
        app_db.execute("INSERT INTO app.llm_requests (workload, source_key) SELECT 'product_enrichment', "
                       "product_id::text FROM app.products ORDER BY product_id DESC")
    app_db.commit()
    night = run_night(app_db, emulator_backend(emulator), PRODUCTS)
    assert night.summary.requests == 12 and night.summary.succeeded == 12  # one answer per key (#19)
    assert_every_request_terminal(app_db, night.run.run_pk, "app.product_enrichments", "product_id")
    assert app_db.execute("SELECT count(*) FROM app.product_enrichments").fetchone()[0] == 12
    assert queue_states(app_db, PRODUCTS.name) == {"done": 36}
    answered_by_another = "SELECT count(*) FROM app.llm_requests WHERE answered_by IS NOT NULL"
    assert app_db.execute(answered_by_another).fetchone()[0] == 24


def _crash_after_create(conn, backend, workload, run, *, create: bool) -> str | None:
    """The state a submit task leaves when killed between the create call and recording its id."""
    from nightshift.batch.body import BatchBody
    from nightshift.batch.submit import _encoded_requests

    body = BatchBody()
    for custom_id, encoded in _encoded_requests(conn, workload, run, 0, None, []):
        body.add(custom_id, encoded)
    pk = conn.execute("INSERT INTO nightshift.batches (run_pk, round, seq, request_count, body_bytes) "
                      "VALUES (%s, 0, 0, %s, %s) RETURNING batch_pk", (run.run_pk, body.count, body.size)).fetchone()[0]
    conn.execute("UPDATE nightshift.items SET batch_pk = %s WHERE run_pk = %s", (pk, run.run_pk))
    conn.commit()
    return backend.create(body).id if create else None


@pytest.mark.parametrize("created", [True, False], ids=["orphan-adopted", "intent-resubmitted"])
def test_a_crash_between_create_and_record_never_pays_twice(app_db, emulator, created, caplog):
    seed(app_db, tickets=9)
    backend = emulator_backend(emulator)
    run = ensure_run(app_db, TICKETS, dag_id="test", airflow_run_id="crash")
    collect(app_db, TICKETS, run)
    orphan = _crash_after_create(app_db, backend, TICKETS, run, create=created)
    result = submit_round(app_db, backend, TICKETS, run, 0, Caps())
    assert created_batches(emulator) == 1
    if created:
        assert result.adopted == [orphan] and result.batch_ids == [orphan]
        assert "adopted orphan" in caplog.text
    else:
        assert result.resubmitted_intents and result.submitted_requests == 9
        assert "submitted again" in caplog.text
    wait_until_ended(backend, result.batch_ids)
    land_round(app_db, backend, TICKETS, run, 0)
    assert finalize_run(app_db, run).succeeded == 9


def test_collect_never_takes_a_request_twice(app_db, emulator):
    seed(app_db, tickets=10)
    first = ensure_run(app_db, TICKETS, dag_id="a", airflow_run_id="1")
    second = ensure_run(app_db, TICKETS, dag_id="b", airflow_run_id="1")
    assert collect(app_db, TICKETS, first) == 10
    assert collect(app_db, TICKETS, second) == 0
    claimers = app_db.execute("SELECT DISTINCT claimed_by FROM app.llm_requests").fetchall()
    assert claimers == [(first.claimer,)]


def test_custom_ids_are_deterministic_and_valid(app_db, emulator):
    seed(app_db, tickets=3)
    run = ensure_run(app_db, TICKETS, dag_id="a", airflow_run_id="1")
    collect(app_db, TICKETS, run)
    ids = [r[0] for r in app_db.execute("SELECT custom_id FROM nightshift.items ORDER BY request_id")]
    assert ids == [f"r{run.run_pk}-q{n}" for n in (1, 2, 3)]
    submitted = submit_round(app_db, emulator_backend(emulator), TICKETS, run, 0, Caps())
    assert json.dumps(submitted.batch_ids)
