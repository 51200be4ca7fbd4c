"""The request queue (``app.llm_requests``): claiming pending work and closing it.

Claims use ``FOR UPDATE SKIP LOCKED`` so two consumers — an overlapping run, or a streaming
worker beside a batch run — can never take the same request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import NamedTuple

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
# one statement, with a deterministic custom_id; no row travels to the worker. A key pending twice
# (raw INSERTs) is one item: its first request; the others are claimed with it, ``answered_by``
# that request, and close with it (:data:`CLOSE_ANSWERED_DUPLICATES`).
CLAIM_INTO_LEDGER = """
WITH claimable AS (
    SELECT request_id, source_key FROM app.llm_requests
     WHERE workload = %(workload)s AND status = 'pending'
     ORDER BY request_id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
), ranked AS (
    SELECT request_id, min(request_id) OVER (PARTITION BY source_key) AS first FROM claimable
), claimed AS (
    UPDATE app.llm_requests AS r
       SET status = 'claimed', claimed_by = %(claimer)s, claimed_at = now(), attempts = r.attempts + 1,
           answered_by = NULLIF(c.first, r.request_id)
      FROM ranked AS c
     WHERE r.request_id = c.request_id
 RETURNING r.request_id, r.source_key, r.answered_by
)
INSERT INTO nightshift.items (run_pk, custom_id, source_key, request_id)
SELECT %(run_pk)s, 'r' || %(run_pk)s || '-q' || request_id, source_key, request_id FROM claimed
 WHERE answered_by IS NULL
ON CONFLICT (run_pk, custom_id) DO NOTHING
"""

#: A run's duplicate requests end as the request that answered them did.
CLOSE_ANSWERED_DUPLICATES = """
UPDATE app.llm_requests d
   SET status = a.status, completed_at = now(),
       error = CASE WHEN a.status = 'failed' THEN a.error END
  FROM app.llm_requests a
 WHERE d.claimed_by = %(claimer)s AND d.status = 'claimed' AND d.answered_by = a.request_id
   AND a.status IN ('done', 'failed')
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


def close_answered_duplicates(conn: psycopg.Connection, claimer: str) -> int:
    """Close the claimer's duplicate requests as their answering requests ended; returns how many."""
    return conn.execute(CLOSE_ANSWERED_DUPLICATES, {"claimer": claimer}).rowcount


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


# -- Queueing work: every path goes through nightshift.enqueue (migration 009), one implementation. --

def enqueue(conn: psycopg.Connection, workload: str, keys: Sequence[str]) -> int:
    """Queue each distinct key that has no pending request yet; return how many were queued."""
    return conn.execute("SELECT nightshift.enqueue(%s, %s::text[])", (workload, list(keys))).fetchone()[0]


def canonical_keys(conn: psycopg.Connection, keys: Sequence[str],
                   cast: Callable[[sql.Composable], sql.Composable]) -> list[str | None]:
    """Each key as the source key's type renders it (``007`` as a bigint is ``7``), None when it is not
    a valid value of that type; ``cast`` is the source key's (:meth:`nightshift.queue.KeyCast.cast`)."""
    statement = sql.SQL("SELECT ({cast})::text FROM unnest(%s::text[]) WITH ORDINALITY AS u (k, n) ORDER BY n"
                        ).format(cast=cast(sql.SQL("u.k")))
    return [key for (key,) in conn.execute(statement, (list(keys),)).fetchall()]


def enqueue_matching(conn: psycopg.Connection, workload: str, source: sql.Identifier, key: sql.Identifier,
                     condition: sql.Composable, params: dict[str, object]) -> tuple[int, int]:
    """Queue the keys of the source rows ``condition`` selects (source aliased ``s``; its values are
    ``params``, bound, never spliced); returns (rows matched, keys queued)."""
    statement = sql.SQL(
        "SELECT cardinality(keys), nightshift.enqueue(%(workload)s, keys) "
        "FROM (SELECT ARRAY(SELECT s.{key}::text FROM {source} s WHERE {condition} ORDER BY s.{key}) "
        "AS keys) k"
    ).format(key=key, source=source, condition=condition)
    matched, queued = conn.execute(statement, {**params, "workload": workload}).fetchone()
    return matched, queued


class Requeued(NamedTuple):
    """What a requeue found and did, in keys."""

    failed: int  #: keys whose items failed with the statuses asked for
    superseded: int  #: answered, failed otherwise, or in a night since: left alone
    queued: int
    already_pending: int


# A key goes back when its latest item (over the workload's non-shadow runs) is one of the chosen
# failures and the streaming path has not answered it since.
REQUEUE = """
WITH failed AS (
    SELECT DISTINCT i.source_key, i.run_pk
      FROM nightshift.items i JOIN nightshift.runs r USING (run_pk)
     WHERE r.workload = %(workload)s AND r.mode <> 'shadow' AND i.status = 'failed'
       AND i.error_type = ANY(%(error_types)s)
       AND (%(run_pk)s::bigint IS NULL OR i.run_pk = %(run_pk)s::bigint)
), latest AS (
    SELECT DISTINCT ON (i.source_key) i.source_key, i.run_pk, i.status, i.error_type, i.updated_at
      FROM nightshift.items i JOIN nightshift.runs r USING (run_pk)
     WHERE r.workload = %(workload)s AND r.mode <> 'shadow'
       AND i.source_key IN (SELECT source_key FROM failed)
     ORDER BY i.source_key, i.run_pk DESC, i.updated_at DESC
), chosen AS (
    SELECT ARRAY(
        SELECT l.source_key FROM latest l JOIN failed f USING (source_key, run_pk)
         WHERE l.status = 'failed' AND l.error_type = ANY(%(error_types)s)
           AND NOT EXISTS (SELECT 1 FROM app.llm_requests q
                            WHERE q.workload = %(workload)s AND q.source_key = l.source_key
                              AND q.status = 'done' AND q.completed_at > l.updated_at)
         ORDER BY l.run_pk, l.source_key) AS keys
)
SELECT (SELECT count(DISTINCT source_key) FROM failed), cardinality(keys),
       nightshift.enqueue(%(workload)s, keys)
  FROM chosen
"""


def requeue(conn: psycopg.Connection, workload: str, error_types: Sequence[str],
            run_pk: int | None) -> Requeued:
    failed, chosen, queued = conn.execute(REQUEUE, {"workload": workload, "error_types": list(error_types),
                                                    "run_pk": run_pk}).fetchone()
    return Requeued(failed, failed - chosen, queued, chosen - queued)


def failure_types(conn: psycopg.Connection, workload: str) -> dict[str, int]:
    """How many of the workload's items (non-shadow runs) failed with each error type."""
    return dict(conn.execute(
        "SELECT i.error_type, count(*) FROM nightshift.items i JOIN nightshift.runs r USING (run_pk) "
        "WHERE r.workload = %s AND r.mode <> 'shadow' AND i.status = 'failed' GROUP BY 1 ORDER BY 2 DESC",
        (workload,)).fetchall())
