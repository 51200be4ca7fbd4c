"""``nightshift.batches``: one row per batch, written as an intent before the create call."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from nightshift.ledger.runs import Run
from nightshift.ledger.status import BatchStatus, CancelReason


@dataclass(frozen=True)
class BatchRow:
    batch_pk: int
    round: int
    seq: int
    backend_batch_id: str | None
    status: BatchStatus
    request_count: int
    body_bytes: int
    intent_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", BatchStatus(self.status))


# The columns of BatchRow, in its order.
_BATCH_COLUMNS = sql.SQL("batch_pk, round, seq, backend_batch_id, status, request_count, body_bytes, intent_at")


def batches(conn: psycopg.Connection, run: Run, round_: int | None = None,
            statuses: tuple[BatchStatus, ...] | None = None) -> list[BatchRow]:
    query = sql.SQL("SELECT {} FROM nightshift.batches WHERE run_pk = %s").format(_BATCH_COLUMNS)
    params: list = [run.run_pk]
    if round_ is not None:
        query += sql.SQL(" AND round = %s")
        params.append(round_)
    if statuses:
        query += sql.SQL(" AND status = ANY(%s)")
        params.append([BatchStatus(s) for s in statuses])
    return [BatchRow(*row) for row in conn.execute(query + sql.SQL(" ORDER BY round, seq"), params)]


def in_flight_batch_ids(conn: psycopg.Connection, run: Run) -> list[str]:
    """The run's batches the API holds and the ledger has not yet seen end."""
    in_flight = batches(conn, run, statuses=(BatchStatus.SUBMITTED,))
    return [b.backend_batch_id for b in in_flight if b.backend_batch_id]


def rounds_and_count(conn: psycopg.Connection, run_pk: int) -> tuple[int, int]:
    """``(rounds submitted, round 0 included; batches)`` of a run."""
    return conn.execute(
        "SELECT coalesce(max(round) + 1, 0), count(*) FROM nightshift.batches WHERE run_pk = %s", (run_pk,)
    ).fetchone()


RECORD_BATCH_STATE = """
UPDATE nightshift.batches
   SET processing_status = %s, request_counts = %s, ended_at = coalesce(ended_at, %s),
       status = CASE WHEN %s = 'ended' AND status = 'submitted' THEN 'ended' ELSE status END
 WHERE backend_batch_id = %s
"""


def batch_state_params(backend_batch_id: str, processing_status: str, request_counts: dict[str, int],
                       ended_at: datetime | str | None) -> tuple:
    from psycopg.types.json import Jsonb

    return (processing_status, Jsonb(request_counts), ended_at, processing_status, backend_batch_id)


def record_batch_state(conn: psycopg.Connection, backend_batch_id: str, processing_status: str,
                       request_counts: dict[str, int], ended_at: datetime | str | None) -> None:
    """Keep the ledger's view of a batch current (the dashboard reads it while a run waits)."""
    conn.execute(RECORD_BATCH_STATE,
                 batch_state_params(backend_batch_id, processing_status, request_counts, ended_at))


RECORD_POLL = ("UPDATE nightshift.batches SET last_polled_at = %s, next_poll_at = %s "
               "WHERE backend_batch_id = ANY(%s)")


def record_poll(conn: psycopg.Connection, batch_ids: list[str], polled_at: datetime,
                next_poll_at: datetime | None) -> None:
    """When the wait last polled these batches and when it polls them next (None: it has stopped)."""
    conn.execute(RECORD_POLL, (polled_at, next_poll_at, list(batch_ids)))


MARK_CANCELLED = ("UPDATE nightshift.batches SET cancel_reason = coalesce(cancel_reason, %s) "
                  "WHERE backend_batch_id = ANY(%s)")


def mark_cancelled(conn: psycopg.Connection, batch_ids: list[str], reason: CancelReason) -> None:
    """Say who cancelled these batches (a first reason recorded stays)."""
    conn.execute(MARK_CANCELLED, (CancelReason(reason), list(batch_ids)))


def cancel_reason(conn: psycopg.Connection, batch_pk: int) -> CancelReason | None:
    reason = conn.execute("SELECT cancel_reason FROM nightshift.batches WHERE batch_pk = %s",
                          (batch_pk,)).fetchone()[0]
    return None if reason is None else CancelReason(reason)


def mark_landed(conn: psycopg.Connection, batch_pk: int) -> None:
    conn.execute("UPDATE nightshift.batches SET status = 'landed', landed_at = now() WHERE batch_pk = %s",
                 (batch_pk,))


def abandon(conn: psycopg.Connection, batch_pk: int, recovery: str) -> None:
    """The batch will never be landed; ``recovery`` says why."""
    conn.execute("UPDATE nightshift.batches SET status = 'abandoned', recovery = %s WHERE batch_pk = %s",
                 (recovery, batch_pk))


def next_seq(conn: psycopg.Connection, run_pk: int, round_: int) -> int:
    return conn.execute("SELECT coalesce(max(seq) + 1, 0) FROM nightshift.batches WHERE run_pk = %s AND round = %s",
                        (run_pk, round_)).fetchone()[0]


def any_batch(conn: psycopg.Connection, run_pk: int) -> bool:
    return conn.execute("SELECT EXISTS (SELECT 1 FROM nightshift.batches WHERE run_pk = %s)",
                        (run_pk,)).fetchone()[0]


#: Requests of batches that hold room in the account's processing queue: intents and batches not yet ended.
QUEUED = "SELECT coalesce(sum(request_count), 0) FROM nightshift.batches WHERE status IN ('intent', 'submitted')"


def lock_admission(conn: psycopg.Connection) -> None:
    """Serialise admission across runs until the transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('nightshift.admission'))")


def queued_requests(conn: psycopg.Connection) -> int:
    return conn.execute(QUEUED).fetchone()[0]


def record_intent(conn: psycopg.Connection, run_pk: int, round_: int, seq: int, *, request_count: int,
                  body_bytes: int, backend: str) -> tuple[int, datetime]:
    """The intent row, written before the create call: ``(batch_pk, intent_at)``."""
    return conn.execute(
        "INSERT INTO nightshift.batches (run_pk, round, seq, request_count, body_bytes, backend) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING batch_pk, intent_at",
        (run_pk, round_, seq, request_count, body_bytes, backend),
    ).fetchone()


def resize(conn: psycopg.Connection, batch_pk: int, *, request_count: int, body_bytes: int) -> None:
    conn.execute("UPDATE nightshift.batches SET request_count = %s, body_bytes = %s WHERE batch_pk = %s",
                 (request_count, body_bytes, batch_pk))


def record_created(conn: psycopg.Connection, batch_pk: int, *, batch_id: str, expires_at: datetime | None,
                   processing_status: str | None, recovery: str | None) -> None:
    """The intent's batch exists: ``submitted``. Raises ``UniqueViolation`` when another row holds
    ``batch_id``."""
    conn.execute(
        "UPDATE nightshift.batches SET backend_batch_id = %s, status = 'submitted', submitted_at = now(), "
        "expires_at = %s, processing_status = %s, recovery = %s WHERE batch_pk = %s",
        (batch_id, expires_at, processing_status, recovery, batch_pk),
    )


def holder_of(conn: psycopg.Connection, batch_id: str) -> tuple[int, int] | None:
    """``(batch_pk, run_pk)`` of the row that holds ``batch_id``, if one does."""
    return conn.execute("SELECT batch_pk, run_pk FROM nightshift.batches WHERE backend_batch_id = %s",
                        (batch_id,)).fetchone()


def intents_with_recovery(conn: psycopg.Connection, run_pk: int, round_: int,
                          prefix: str) -> list[tuple[int, datetime, int]]:
    """``(batch_pk, intent_at, request_count)`` of the round's batches whose recovery starts with
    ``prefix``."""
    return conn.execute(
        "SELECT batch_pk, intent_at, request_count FROM nightshift.batches "
        "WHERE run_pk = %s AND round = %s AND recovery LIKE %s", (run_pk, round_, prefix + "%"),
    ).fetchall()


# The same statements on the async connection the triggers use. -------------------------------

#: Runs with a batch in flight, and those batches (the waits sharing the poll budget).
IN_FLIGHT = "SELECT count(DISTINCT run_pk), count(*) FROM nightshift.batches WHERE status = 'submitted'"


async def in_flight_counts(conn: psycopg.AsyncConnection) -> tuple[int, int]:
    """``(runs with a batch in flight, batches in flight)``."""
    cur = await conn.execute(IN_FLIGHT)
    return await cur.fetchone()


async def record_batch_state_async(conn: psycopg.AsyncConnection, backend_batch_id: str,
                                   processing_status: str, request_counts: dict[str, int],
                                   ended_at: datetime | str | None) -> None:
    await conn.execute(RECORD_BATCH_STATE,
                       batch_state_params(backend_batch_id, processing_status, request_counts, ended_at))


#: Many waits' poll times in one statement; an older poll never overwrites a newer one.
RECORD_POLLS = """
UPDATE nightshift.batches b SET last_polled_at = v.polled_at, next_poll_at = v.next_poll_at
  FROM unnest(%s::text[], %s::timestamptz[], %s::timestamptz[]) AS v(id, polled_at, next_poll_at)
 WHERE b.backend_batch_id = v.id AND (b.last_polled_at IS NULL OR b.last_polled_at <= v.polled_at)
"""


async def record_polls_async(conn: psycopg.AsyncConnection,
                             polls: dict[str, tuple[datetime, datetime | None]]) -> None:
    """``polls``: batch id → (polled at, next poll at; None once its wait stopped polling)."""
    ids = list(polls)
    await conn.execute(RECORD_POLLS, (ids, [polls[i][0] for i in ids], [polls[i][1] for i in ids]))


async def mark_cancelled_async(conn: psycopg.AsyncConnection, batch_ids: list[str],
                               reason: CancelReason) -> None:
    await conn.execute(MARK_CANCELLED, (CancelReason(reason), list(batch_ids)))


async def queued_requests_async(conn: psycopg.AsyncConnection) -> int:
    return (await (await conn.execute(QUEUED)).fetchone())[0]
