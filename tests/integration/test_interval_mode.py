"""Interval mode (backfill): a run takes its data interval's source rows, once per prompt version."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from nightshift_dev import demo_data
from nightshift.deployment import get_workload
from tests.batch_night import run_night
from tests.helpers import emulator_backend

TICKETS = get_workload("ticket_classification")
DAY = timedelta(days=1)
START = datetime(2026, 3, 1, tzinfo=timezone.utc)


@pytest.fixture
def three_days(app_db):
    """Tickets created on three consecutive days (8, 5 and 7 of them), none queued."""
    for offset, count in enumerate((8, 5, 7)):
        demo_data.generate(app_db, tickets=count, products=0, bad_every=0, enqueue=False,
                           now=START + (offset + 1) * DAY, seed=offset)
    return [(START + i * DAY, START + (i + 1) * DAY) for i in range(3)]


def interval_night(app_db, emulator, interval, name, workload=TICKETS, reprocess=False):
    return run_night(app_db, emulator_backend(emulator), workload, mode="interval", data_interval=interval,
                     airflow_run_id=name, reprocess=reprocess)


def keys_in(app_db, start, end) -> set[str]:
    return {str(k) for (k,) in app_db.execute(
        "SELECT ticket_id FROM app.support_tickets WHERE created_at >= %s AND created_at < %s", (start, end))}


def test_interval_mode_takes_exactly_the_intervals_rows(app_db, emulator, three_days):
    night = interval_night(app_db, emulator, three_days[1], "day2")
    items = {k for (k,) in app_db.execute("SELECT source_key FROM nightshift.items WHERE run_pk = %s",
                                          (night.run.run_pk,))}
    assert items == keys_in(app_db, *three_days[1]) and len(items) == 5
    assert night.summary.succeeded == 5
    assert app_db.execute("SELECT count(*) FROM app.llm_requests").fetchone()[0] == 0  # the queue is not involved


def test_a_second_run_of_a_finished_interval_costs_nothing(app_db, emulator, three_days):
    interval_night(app_db, emulator, three_days[0], "first")
    batches = emulator.stats()["batches_created"]
    again = interval_night(app_db, emulator, three_days[0], "again")
    assert again.summary.status == "empty" and again.summary.requests == 0
    assert emulator.stats()["batches_created"] == batches


def test_a_new_prompt_version_reprocesses_and_rows_record_it(app_db, emulator, three_days):
    interval_night(app_db, emulator, three_days[2], "v1")
    revised = TICKETS.model_copy(update={"max_tokens": TICKETS.max_tokens + 50})
    assert revised.prompt_version != TICKETS.prompt_version
    night = interval_night(app_db, emulator, three_days[2], "v2", workload=revised)
    assert night.summary.succeeded == 7
    versions = app_db.execute("SELECT prompt_version, count(*) FROM app.ticket_classifications "
                              "GROUP BY 1").fetchall()
    assert versions == [(revised.prompt_version, 7)]


def test_reprocess_redoes_rows_already_at_the_current_version(app_db, emulator, three_days):
    interval_night(app_db, emulator, three_days[0], "once")
    night = interval_night(app_db, emulator, three_days[0], "twice", reprocess=True)
    assert night.summary.succeeded == 8


def test_a_backfill_rerun_of_the_same_airflow_run_with_reprocess_redoes_its_rows(app_db, emulator,
                                                                                 three_days):
    # `airflow backfill create --reprocess-behavior completed` clears the interval's existing run: the same
    # Airflow run id runs again, now with the backfill's conf {"reprocess": true}
    first = interval_night(app_db, emulator, three_days[0], "backfill__2026-03-01T00:00:00+00:00")
    rows = "SELECT ticket_id, classified_at FROM app.ticket_classifications"
    before = dict(app_db.execute(rows).fetchall())
    batches = emulator.stats()["batches_created"]
    again = interval_night(app_db, emulator, three_days[0], "backfill__2026-03-01T00:00:00+00:00",
                           reprocess=True)
    assert again.run.run_pk != first.run.run_pk and again.summary.succeeded == 8
    assert emulator.stats()["batches_created"] == batches + 1  # new requests
    after = dict(app_db.execute(rows).fetchall())
    assert after.keys() == before.keys() and all(after[k] > before[k] for k in before)  # rows rewritten
    # the first attempt keeps its items and costs, under a name that says what it was
    assert app_db.execute("SELECT airflow_run_id, status FROM nightshift.runs WHERE run_pk = %s",
                          (first.run.run_pk,)).fetchone() == (
        f"backfill__2026-03-01T00:00:00+00:00 (attempt {first.run.run_pk})", "succeeded")


def test_a_dry_run_prices_each_interval_without_creating_a_batch(app_db, emulator, three_days):
    from nightshift.batch.estimate import estimate
    from nightshift.costs import price_table

    interval_night(app_db, emulator, three_days[0], "done-already")
    batches = emulator.stats()["batches_created"]
    days = estimate(app_db, TICKETS, price_table(), three_days)
    assert [d.rows for d in days] == [0, 5, 7]  # day 1 is at the current version already
    assert all(d.prefix_tokens >= price_table().price(TICKETS.model).min_cacheable_tokens > 0 for d in days)
    assert days[0].batch_usd == 0 and 0 < days[1].batch_usd < days[1].streaming_usd
    assert emulator.stats()["batches_created"] == batches
    assert [d.rows for d in estimate(app_db, TICKETS, price_table(), three_days, reprocess=True)] == [8, 5, 7]


def test_estimate_covers_the_intervals_backfill_create_runs_for_the_same_dates(app_db, app_dsn, capsys):
    from airflow.models.backfill import _get_info_list  # what `airflow backfill create` iterates
    from airflow.sdk.timezone import parse
    from airflow.serialization.serialized_objects import DagSerialization

    from nightshift.batch_dags import backfill_dag
    from nightshift.cli import main

    for offset, count in enumerate((2, 3, 4)):  # the nights start at 02:00: each day's tickets end at 02:00
        demo_data.generate(app_db, tickets=count, products=0, bad_every=0, enqueue=False, seed=offset,
                           now=START + (offset + 1) * DAY + timedelta(hours=2))
    first, last = "2026-03-01T02:00:00+00:00", "2026-03-03T02:00:00+00:00"  # first and last interval's start
    assert main(["estimate", "--workload", TICKETS.name, "--from", first, "--to", last, "--json",
                 "--dsn", app_dsn]) == 0
    estimated = [(datetime.fromisoformat(i["start"]), datetime.fromisoformat(i["end"]), i["rows"])
                 for i in json.loads(capsys.readouterr().out)]

    dag = DagSerialization.from_dict(DagSerialization.to_dict(backfill_dag(TICKETS)))
    backfill = [info.data_interval for info in _get_info_list(
        from_date=parse(first), to_date=parse(last), reverse=False, dag=dag)]
    assert [(start, end) for start, end, _ in estimated] == [(i.start, i.end) for i in backfill]
    assert [rows for *_, rows in estimated] == [2, 3, 4]
    # `airflow dags test <dag> <date>` runs the interval that ends at the date: the README says to pass its end
    dags_test = dag.timetable.infer_manual_data_interval(run_after=parse("2026-03-02T02:00:00+00:00"))
    assert dags_test == backfill[0]


def test_a_row_that_failed_invalid_input_is_not_requested_again_until_it_changes(app_db, emulator):
    interval = (START, START + DAY)
    demo_data.generate(app_db, tickets=5, products=0, bad_every=5, enqueue=False, now=interval[1], seed=3)
    (bad,) = app_db.execute("SELECT ticket_id FROM app.support_tickets WHERE body = ''").fetchone()

    def requested(night) -> dict[str, str | None]:
        return dict(app_db.execute("SELECT source_key, error_type FROM nightshift.items WHERE run_pk = %s",
                                   (night.run.run_pk,)).fetchall())

    first = interval_night(app_db, emulator, interval, "first")
    assert requested(first)[str(bad)] == "invalid_input" and first.summary.failed == {"invalid_input": 1}
    again = interval_night(app_db, emulator, interval, "again")  # a later backfill of the interval
    assert (again.summary.requests, again.summary.failed) == (0, {})
    redo = interval_night(app_db, emulator, interval, "redo", reprocess=True)  # reprocess redoes the others only
    assert str(bad) not in requested(redo) and (redo.summary.requests, redo.summary.failed) == (4, {})

    app_db.execute("UPDATE app.support_tickets SET body = 'The invoice is charged twice.' WHERE ticket_id = %s",
                   (bad,))
    app_db.commit()
    fixed = interval_night(app_db, emulator, interval, "fixed")
    assert requested(fixed) == {str(bad): None} and fixed.summary.succeeded == 1
