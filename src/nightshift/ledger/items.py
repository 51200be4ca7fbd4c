"""``nightshift.items``: one row per request of a run, each ending ``succeeded`` or ``failed``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from nightshift.ledger.runs import Run
from nightshift.ledger.status import ItemStatus


def item_counts(conn: psycopg.Connection, run: Run) -> dict[ItemStatus, int]:
    return {ItemStatus(status): n for status, n in conn.execute(
        "SELECT status, count(*) FROM nightshift.items WHERE run_pk = %s GROUP BY status", (run.run_pk,)
    ).fetchall()}


def failure_counts(conn: psycopg.Connection, run: Run) -> dict[str, int]:
    return dict(conn.execute(
        "SELECT error_type, count(*) FROM nightshift.items WHERE run_pk = %s AND status = 'failed' "
        "GROUP BY error_type ORDER BY 2 DESC", (run.run_pk,)
    ).fetchall())


def count(conn: psycopg.Connection, run_pk: int) -> int:
    return conn.execute("SELECT count(*) FROM nightshift.items WHERE run_pk = %s", (run_pk,)).fetchone()[0]


def waiting_for_round(conn: psycopg.Connection, run_pk: int, round_: int) -> int:
    """Items a retry round would submit: marked for retry, or already in that round and not yet landed."""
    return conn.execute(
        "SELECT count(*) FROM nightshift.items WHERE run_pk = %s AND "
        "(status = 'retry' OR (round = %s AND status IN ('pending', 'submitted')))",
        (run_pk, round_)).fetchone()[0]


def analyze(conn: psycopg.Connection) -> None:
    """A night can add a large share of the table at once; plan the next steps on real counts."""
    conn.execute("ANALYZE nightshift.items")


# Interval mode: one item per source row that ``rows`` selects (``FROM`` onwards). Keys that are
# not custom_id-safe are hashed; the item keeps the key itself.
INTERVAL_INTO_LEDGER = sql.SQL("""
INSERT INTO nightshift.items (run_pk, custom_id, source_key)
SELECT %(run_pk)s,
       'r' || %(run_pk)s || '-' || CASE WHEN s.{key}::text ~ '^[a-zA-Z0-9_-]{{1,40}}$' THEN 'k' || s.{key}::text
                                      ELSE 'h' || md5(s.{key}::text) END,
       s.{key}::text
""")
INTERVAL_INTO_LEDGER_END = sql.SQL("ON CONFLICT (run_pk, custom_id) DO NOTHING")


def add_interval_rows(conn: psycopg.Connection, key: sql.Identifier, rows: sql.Composable,
                      params: dict[str, Any]) -> int:
    """Add an item for each source row ``rows`` selects (aliased ``s``, keyed by ``key``); return how many were new."""
    statement = INTERVAL_INTO_LEDGER.format(key=key) + rows + INTERVAL_INTO_LEDGER_END
    return conn.execute(statement, params).rowcount


CLOSE_OPEN_ITEMS = """
WITH closed AS MATERIALIZED (
    UPDATE nightshift.items i
       SET status = 'failed', updated_at = now(),
           error_type = CASE
               WHEN i.status = 'retry' THEN coalesce(i.error_type, 'error') || '_after_retries'
               WHEN %(past_deadline)s THEN 'deadline_exceeded'
               WHEN i.status = 'submitted' THEN 'not_landed'
               ELSE 'not_submitted' END,
           error_message = CASE
               WHEN i.status = 'retry' THEN 'no retry round left: ' || coalesce(i.error_message, '')
               WHEN i.status = 'submitted' THEN 'its batch ended or was cancelled without being landed'
               WHEN %(past_deadline)s THEN 'the run''s deadline passed before this request was submitted'
               ELSE 'the run ended before this request was submitted' END
     WHERE i.run_pk = %(run_pk)s AND i.status IN ('pending', 'submitted', 'retry')
 RETURNING i.request_id, i.error_type, i.error_message
)
UPDATE app.llm_requests q
   SET status = 'failed', completed_at = now(), error = c.error_type || ': ' || c.error_message
  FROM closed c
 WHERE q.request_id = c.request_id AND NOT %(shadow)s
"""


def close_open_items(conn: psycopg.Connection, run: Run, *, past_deadline: bool) -> None:
    """Fail every item still open, with the reason it stopped, and its queue request with it (not a shadow run's)."""
    conn.execute(CLOSE_OPEN_ITEMS, {"run_pk": run.run_pk, "past_deadline": past_deadline, "shadow": run.shadow})


def mean_output_tokens(conn: psycopg.Connection, workload: str) -> Decimal | None:
    """The mean output of a workload's succeeded requests, over every run (None without history)."""
    return conn.execute(
        "SELECT avg(i.output_tokens) FROM nightshift.items i JOIN nightshift.runs r USING (run_pk) "
        "WHERE r.workload = %s AND i.status = 'succeeded'", (workload,)).fetchone()[0]
