"""The request queue (``app.llm_requests``): claiming pending work and closing it.

Claims use ``FOR UPDATE SKIP LOCKED`` so two consumers — an overlapping run, or a streaming
worker beside a batch run — can never take the same request.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import psycopg
from psycopg import sql

from nightshift.workloads.definition import Workload

QUEUE_TABLE = "app.llm_requests"

CLAIM = """
UPDATE app.llm_requests AS r
   SET status = 'claimed', claimed_by = %(claimer)s, claimed_at = now(), attempts = r.attempts + 1
 WHERE r.request_id IN (
        SELECT request_id FROM app.llm_requests
         WHERE workload = %(workload)s
           AND (status = 'pending' OR (status = 'claimed' AND claimed_by = %(claimer)s))
         ORDER BY request_id
         LIMIT %(limit)s
           FOR UPDATE SKIP LOCKED)
RETURNING r.request_id, r.source_key
"""


def claim(conn: psycopg.Connection, workload: Workload, claimer: str, limit: int) -> list[tuple[int, str]]:
    """Claim up to ``limit`` pending requests (and re-take any this claimer already holds)."""
    rows = conn.execute(CLAIM, {"workload": workload.name, "claimer": claimer, "limit": limit}).fetchall()
    conn.commit()
    return sorted(rows)


def mark_done(conn: psycopg.Connection, request_ids: Iterable[int]) -> None:
    conn.execute(
        "UPDATE app.llm_requests SET status = 'done', completed_at = now(), error = NULL "
        "WHERE request_id = ANY(%s)",
        (list(request_ids),),
    )


def mark_failed(conn: psycopg.Connection, request_id: int, error: str) -> None:
    conn.execute(
        "UPDATE app.llm_requests SET status = 'failed', completed_at = now(), error = %s WHERE request_id = %s",
        (error, request_id),
    )


def release(conn: psycopg.Connection, request_ids: Iterable[int], error: str | None = None) -> None:
    """Hand claimed requests back to the queue, e.g. after a transient API failure."""
    conn.execute(
        "UPDATE app.llm_requests SET status = 'pending', claimed_by = NULL, claimed_at = NULL, error = %s "
        "WHERE request_id = ANY(%s) AND status = 'claimed'",
        (error, list(request_ids)),
    )


# A batch run's claim: the requests go straight from the queue into the run's ledger items, in
# one statement, with a deterministic custom_id; no row travels to the worker.
CLAIM_INTO_LEDGER = """
WITH claimable AS (
    SELECT request_id FROM app.llm_requests
     WHERE workload = %(workload)s AND status = 'pending'
     ORDER BY request_id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE app.llm_requests AS r
       SET status = 'claimed', claimed_by = %(claimer)s, claimed_at = now(), attempts = r.attempts + 1
      FROM claimable AS c
     WHERE r.request_id = c.request_id
 RETURNING r.request_id, r.source_key
)
INSERT INTO nightshift.items (run_pk, custom_id, source_key, request_id)
SELECT %(run_pk)s, 'r' || %(run_pk)s || '-q' || request_id, source_key, request_id FROM claimed
ON CONFLICT (run_pk, custom_id) DO NOTHING
"""


SHADOW_INTO_LEDGER = """
INSERT INTO nightshift.items (run_pk, custom_id, source_key, request_id)
SELECT %(run_pk)s, 'r' || %(run_pk)s || '-q' || request_id, source_key, request_id
  FROM app.llm_requests
 WHERE workload = %(workload)s AND requested_at >= %(start)s AND requested_at < %(end)s
 ORDER BY request_id
 LIMIT %(limit)s
ON CONFLICT (run_pk, custom_id) DO NOTHING
"""


def claim_into_run(conn: psycopg.Connection, *, workload: str, claimer: str, run_pk: int,
                   limit: int | None) -> int:
    """Claim up to ``limit`` pending requests into the run's items; return how many were new."""
    return conn.execute(CLAIM_INTO_LEDGER, {"workload": workload, "claimer": claimer, "run_pk": run_pk,
                                            "limit": limit}).rowcount


def copy_window_into_run(conn: psycopg.Connection, *, workload: str, run_pk: int, limit: int | None,
                         start: datetime, end: datetime) -> int:
    """Copy the requests queued in ``[start, end)`` into the run's items without claiming them (a
    shadow run)."""
    return conn.execute(SHADOW_INTO_LEDGER, {"workload": workload, "run_pk": run_pk, "limit": limit,
                                             "start": start, "end": end}).rowcount


def is_valid_input(value: sql.Composable, pattern: str, oid: int) -> sql.Composable:
    """Whether a queue key (text) is a valid value of the type ``oid``, without raising: ``pattern``
    settles the keys it matches, ``nightshift.is_valid_input`` the rest."""
    return sql.SQL("CASE WHEN {v} ~ {pattern} THEN true ELSE nightshift.is_valid_input({v}, {oid}::oid::regtype) "
                   "END").format(v=value, pattern=sql.Literal(pattern), oid=sql.Literal(oid))


#: A landing's queue update: the requests of the items it landed (a ``landed`` CTE, see
#: :func:`nightshift.ledger.items.land_from`) are done, or failed with the item's reason.
CLOSE_LANDED = sql.SQL(
    "UPDATE app.llm_requests q SET status = CASE WHEN l.status = 'succeeded' THEN 'done' ELSE 'failed' END, "
    "completed_at = now(), "
    "error = CASE WHEN l.status = 'succeeded' THEN NULL ELSE l.error_type || ': ' || l.error_message END "
    "FROM landed l WHERE q.request_id = l.request_id AND l.status IN ('succeeded', 'failed')")
