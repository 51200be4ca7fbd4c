"""The proofs that a batch is ours: create answers (``nightshift.create_answers``) and suspects
(``nightshift.suspect_batches``), and a proven late duplicate's row in ``nightshift.batches``."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import psycopg

from nightshift.ledger.status import Verdict


def record_create_answer(conn: psycopg.Connection, batch_pk: int, batch_id: str) -> None:
    conn.execute("INSERT INTO nightshift.create_answers (batch_pk, backend_batch_id) VALUES (%s, %s)",
                 (batch_pk, batch_id))


def answered(conn: psycopg.Connection, batch_pk: int) -> str | None:
    """The batch id the API answered for this intent, if a create call's answer was journalled."""
    row = conn.execute("SELECT backend_batch_id FROM nightshift.create_answers WHERE batch_pk = %s "
                       "ORDER BY answer_pk DESC LIMIT 1", (batch_pk,)).fetchone()
    return row[0] if row else None


def known_batch_ids(conn: psycopg.Connection, batch_pk: int) -> set[str]:
    """Batch ids the ledger knows (recorded, or answered for another intent) or has proven not this
    intent's."""
    return {row[0] for row in conn.execute(
        "SELECT backend_batch_id FROM nightshift.batches WHERE backend_batch_id IS NOT NULL "
        "UNION SELECT backend_batch_id FROM nightshift.create_answers WHERE batch_pk <> %s "
        "UNION SELECT backend_batch_id FROM nightshift.suspect_batches WHERE verdict = 'not_ours' AND batch_pk = %s",
        (batch_pk, batch_pk))}


def intent_custom_ids(conn: psycopg.Connection, batch_pk: int) -> set[str]:
    return {row[0] for row in conn.execute("SELECT custom_id FROM nightshift.items WHERE batch_pk = %s", (batch_pk,))}


def run_custom_ids(conn: psycopg.Connection, run_pk: int) -> set[str]:
    return {row[0] for row in conn.execute("SELECT custom_id FROM nightshift.items WHERE run_pk = %s", (run_pk,))}


def record_suspect(conn: psycopg.Connection, batch_pk: int, batch_id: str) -> None:
    """An unproven suspect for the intent (a suspect already recorded keeps its verdict)."""
    conn.execute("INSERT INTO nightshift.suspect_batches (backend_batch_id, batch_pk) VALUES (%s, %s) "
                 "ON CONFLICT DO NOTHING", (batch_id, batch_pk))


def settle_suspect(conn: psycopg.Connection, batch_id: str, batch_pk: int, verdict: Verdict) -> None:
    conn.execute("INSERT INTO nightshift.suspect_batches (backend_batch_id, batch_pk, verdict, settled_at) "
                 "VALUES (%s, %s, %s, now()) ON CONFLICT (backend_batch_id, batch_pk) DO UPDATE "
                 "SET verdict = EXCLUDED.verdict, settled_at = EXCLUDED.settled_at",
                 (batch_id, batch_pk, Verdict(verdict)))


#: Unproven late-duplicate suspects of a workload, oldest first: those whose intent has its batch.
LATE_SUSPECTS = """
SELECT s.backend_batch_id, s.batch_pk, b.run_pk, b.round, r.created_at
  FROM nightshift.suspect_batches s
  JOIN nightshift.batches b ON b.batch_pk = s.batch_pk
  JOIN nightshift.runs r ON r.run_pk = b.run_pk
 WHERE s.verdict = 'unproven' AND b.backend_batch_id IS NOT NULL AND r.workload = %s
 ORDER BY s.found_at
 LIMIT 50
"""


def late_suspects(conn: psycopg.Connection, workload: str) -> list[tuple[str, int, int, int, datetime]]:
    """``(batch id, intent's batch_pk, run_pk, round, run created at)`` of :data:`LATE_SUSPECTS`."""
    return conn.execute(LATE_SUSPECTS, (workload,)).fetchall()


def record_late_duplicate(conn: psycopg.Connection, batch_pk: int, batch_id: str, *, run_pk: int, round_: int,
                          recovery: str, billed: Decimal) -> None:
    """A proven second copy of the intent's batch: an ``abandoned`` batch of the same round (never
    landed) with what it was billed."""
    next_seq = conn.execute("SELECT max(seq) + 1 FROM nightshift.batches WHERE run_pk = %s AND round = %s",
                            (run_pk, round_)).fetchone()[0]
    conn.execute(
        "INSERT INTO nightshift.batches (run_pk, round, seq, backend_batch_id, status, request_count, "
        "body_bytes, intent_at, recovery, billed_usd, backend) SELECT run_pk, round, %s, %s, 'abandoned', "
        "request_count, 0, intent_at, %s, %s, backend FROM nightshift.batches WHERE batch_pk = %s",
        (next_seq, batch_id, recovery, billed, batch_pk))
