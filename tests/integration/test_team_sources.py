"""A team's own sources (#19): a view over a join with a text key, a materialized view with a uuid key,
and source columns copied into the destination, on the batch (queue and interval mode) and the streaming
path alike; the requests are queued by a filter over the view, as `nightshift enqueue --where` does.

Everything the test works on is created here from SQL it owns; the nights run through the same
functions the DAG's tasks call, against the emulator over HTTP.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import pytest

from nightshift.enqueue import Filter, enqueue_where
from nightshift.streaming import run_streaming
from nightshift.workloads.definition import load_workload_file
from tests.batch_night import run_night
from tests.helpers import emulator_backend

TEAM_SOURCES = """
DROP SCHEMA IF EXISTS desk CASCADE;
CREATE SCHEMA desk;
CREATE TABLE desk.customers (customer_ref text PRIMARY KEY, name text NOT NULL, tier text NOT NULL);
CREATE TABLE desk.tickets (ticket_ref text PRIMARY KEY, ticket_uuid uuid NOT NULL UNIQUE,
                           customer_ref text NOT NULL REFERENCES desk.customers, subject text NOT NULL,
                           opened_at timestamptz NOT NULL);
INSERT INTO desk.customers SELECT 'CUST-' || n, 'Customer ' || n, (ARRAY['gold', 'basic'])[1 + n % 2]
  FROM generate_series(1, 3) n;
INSERT INTO desk.tickets SELECT 'TCK-' || lpad(n::text, 4, '0'), md5('ticket ' || n)::uuid,
                                'CUST-' || (1 + n % 3), 'Refund for order ' || n,
                                '2026-03-01T00:00:00Z'::timestamptz + n * interval '1 hour'
                           FROM generate_series(1, 6) n;
CREATE VIEW desk.ticket_view AS
  SELECT t.ticket_ref, t.ticket_uuid, t.subject, t.opened_at, c.name AS customer, c.tier
    FROM desk.tickets t JOIN desk.customers c USING (customer_ref);
CREATE MATERIALIZED VIEW desk.ticket_snapshot AS SELECT * FROM desk.ticket_view;
CREATE TABLE desk.topics_by_ref (ticket_ref varchar(20) PRIMARY KEY, topic text NOT NULL,
                                 customer_tier text NOT NULL);
CREATE TABLE desk.topics_by_uuid (ticket_uuid uuid PRIMARY KEY, topic text NOT NULL,
                                  customer_name varchar(200) NOT NULL, ticket_ref text NOT NULL);
"""

COMMON = """
model: claude-haiku-5-5
effort: low
max_tokens: 600
prompt:
  instructions_file: instructions.md
  item_template: "{customer} ({tier}): {subject}"
output:
  tool_name: record_topic
  schema:
    type: object
    additionalProperties: false
    required: [topic]
    properties:
      topic: {type: string, enum: [billing, shipping, other]}
"""
BY_REF = """
name: desk_topics_by_ref
source:
  table: desk.ticket_view
  key: ticket_ref
  columns: [subject, customer, tier]
  timestamp_column: opened_at
destination:
  table: desk.topics_by_ref
  key: ticket_ref
  columns: {topic: topic}
  source_columns: {customer_tier: tier}
  delivery_columns: {}
  asset: {name: desk.topics_by_ref, uri: "postgres://appdb:5432/app/desk/topics_by_ref"}
"""
BY_UUID = """
name: desk_topics_by_uuid
source:
  table: desk.ticket_snapshot
  key: ticket_uuid
  columns: [ticket_ref, subject, customer, tier]
  timestamp_column: opened_at
destination:
  table: desk.topics_by_uuid
  key: ticket_uuid
  columns: {topic: topic}
  source_columns: {customer_name: customer, ticket_ref: ticket_ref}
  delivery_columns: {}
  asset: {name: desk.topics_by_uuid, uri: "postgres://appdb:5432/app/desk/topics_by_uuid"}
"""
#: What each destination row must hold besides its topic, straight from the joined tables.
EXPECTED = {
    "desk_topics_by_ref": "SELECT t.ticket_ref, c.tier FROM desk.tickets t "
                          "JOIN desk.customers c USING (customer_ref) ORDER BY 1",
    "desk_topics_by_uuid": "SELECT t.ticket_uuid, c.name, t.ticket_ref FROM desk.tickets t "
                           "JOIN desk.customers c USING (customer_ref) ORDER BY 1",
}
COPIED = {"desk_topics_by_ref": "ticket_ref, customer_tier",
          "desk_topics_by_uuid": "ticket_uuid, customer_name, ticket_ref"}


def _workload(folder, text: str):
    (folder / "instructions.md").write_text("Read the ticket and record its topic. " * 20)
    name = text.split("name: ")[1].split()[0]
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(COMMON) + textwrap.dedent(text))
    return load_workload_file(path)


@pytest.fixture
def desk(app_db, tmp_path):
    app_db.execute(TEAM_SOURCES)
    app_db.commit()
    return {"text": _workload(tmp_path, BY_REF), "uuid": _workload(tmp_path, BY_UUID)}


def _queue_every_source_row(conn, workload) -> None:
    """As `nightshift enqueue --where tier=gold`, then `--where tier=basic`, filter the view."""
    queued = [enqueue_where(conn, workload, [Filter.parse(f"tier={tier}", workload)]).queued
              for tier in ("gold", "basic")]
    assert queued == [2, 4]


def _rows(conn, workload, columns: str) -> list[tuple]:
    query = f"SELECT {columns} FROM {workload.destination.table} ORDER BY 1"  # noqa: S608 (its own table)
    return conn.execute(query).fetchall()


@pytest.mark.parametrize("key_type", ["text", "uuid"])
def test_a_view_over_a_join_feeds_both_paths_the_same_rows_with_copied_source_columns(app_db, emulator, desk,
                                                                                         key_type):
    workload = desk[key_type]
    backend = emulator_backend(emulator)
    expected = app_db.execute(EXPECTED[workload.name]).fetchall()
    _queue_every_source_row(app_db, workload)
    night = run_night(app_db, backend, workload)
    assert night.summary.succeeded == 6, night.summary
    assert _rows(app_db, workload, COPIED[workload.name]) == expected
    batched = _rows(app_db, workload, "*")
    assert all(row[1] in ("billing", "shipping", "other") for row in batched)

    app_db.execute(f"TRUNCATE {workload.destination.table}")  # noqa: S608 (the test's own table)
    app_db.commit()
    _queue_every_source_row(app_db, workload)
    summary = run_streaming(app_db, backend, workload, claimer="stream:test")
    assert summary.succeeded == 6, summary
    assert _rows(app_db, workload, "*") == batched

    app_db.execute(f"TRUNCATE {workload.destination.table}")  # noqa: S608 (the test's own table)
    app_db.commit()
    interval = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))
    night = run_night(app_db, backend, workload, mode="interval", data_interval=interval,
                      airflow_run_id="backfill__2026-03-01")
    assert night.summary.succeeded == 6, night.summary
    assert _rows(app_db, workload, "*") == batched
