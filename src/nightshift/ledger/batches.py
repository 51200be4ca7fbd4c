"""``nightshift.batches``: one row per batch, written as an intent before the create call."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from nightshift.ledger.runs import Run
from nightshift.ledger.status import BatchStatus


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
    return [b.backend_batch_id for b in batches(conn, run, statuses=(BatchStatus.SUBMITTED,)) if b.backend_batch_id]


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
