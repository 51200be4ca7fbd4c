"""Reading and writing the ledger (``nightshift.runs`` / ``batches`` / ``items``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import psycopg
from psycopg import sql

from nightshift.workloads.definition import Workload


@dataclass(frozen=True)
class Run:
    run_pk: int
    workload: str
    dag_id: str
    airflow_run_id: str
    deadline_at: datetime
    status: str
    mode: str = "queue"
    created_at: datetime | None = None

    @property
    def billed_on(self) -> date | None:
        """The day the API bills this run's work (its start, UTC): the price row in force then applies."""
        return None if self.created_at is None else self.created_at.astimezone(timezone.utc).date()

    @property
    def shadow(self) -> bool:
        """A shadow run writes a shadow table and leaves the queue to the streaming path."""
        return self.mode == "shadow"

    @property
    def claimer(self) -> str:
        """How this run's claims are labelled in the request queue."""
        return f"nightshift:run:{self.run_pk}"

    def past_deadline(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(timezone.utc)) >= self.deadline_at


@dataclass(frozen=True)
class BatchRow:
    batch_pk: int
    round: int
    seq: int
    backend_batch_id: str | None
    status: str
    request_count: int
    body_bytes: int
    intent_at: datetime


# The columns of Run and BatchRow, in their order.
_RUN_COLUMNS = sql.SQL("run_pk, workload, dag_id, airflow_run_id, deadline_at, status, mode, created_at")
_BATCH_COLUMNS = sql.SQL("batch_pk, round, seq, backend_batch_id, status, request_count, body_bytes, intent_at")


def ensure_run(
    conn: psycopg.Connection, workload: Workload, *, dag_id: str, airflow_run_id: str,
    deadline: timedelta | None = None, mode: str = "queue",
    data_interval: tuple[datetime | None, datetime | None] = (None, None),
) -> Run:
    """The ledger run for an Airflow run, created on first call; later calls return it unchanged."""
    deadline = deadline or timedelta(hours=workload.batch.deadline_hours)
    row = conn.execute(
        sql.SQL("""
        INSERT INTO nightshift.runs (workload, dag_id, airflow_run_id, mode, data_interval_start,
                                     data_interval_end, model, prompt_version, deadline_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now() + %s)
        ON CONFLICT (dag_id, airflow_run_id) DO UPDATE SET workload = EXCLUDED.workload
        RETURNING {}
        """).format(_RUN_COLUMNS),
        (workload.name, dag_id, airflow_run_id, mode, *data_interval, workload.model,
         workload.prompt_version, deadline),
    ).fetchone()
    conn.commit()
    return Run(*row)


def get_run(conn: psycopg.Connection, *, dag_id: str, airflow_run_id: str) -> Run:
    row = conn.execute(
        sql.SQL("SELECT {} FROM nightshift.runs WHERE dag_id = %s AND airflow_run_id = %s").format(_RUN_COLUMNS),
        (dag_id, airflow_run_id),
    ).fetchone()
    if row is None:
        raise LookupError(
            f"no Nightshift run recorded for {dag_id} / {airflow_run_id}: the collect task has not run"
        )
    return Run(*row)


def batches(conn: psycopg.Connection, run: Run, round_: int | None = None,
            statuses: tuple[str, ...] | None = None) -> list[BatchRow]:
    query = sql.SQL("SELECT {} FROM nightshift.batches WHERE run_pk = %s").format(_BATCH_COLUMNS)
    params: list = [run.run_pk]
    if round_ is not None:
        query += sql.SQL(" AND round = %s")
        params.append(round_)
    if statuses:
        query += sql.SQL(" AND status = ANY(%s)")
        params.append(list(statuses))
    return [BatchRow(*row) for row in conn.execute(query + sql.SQL(" ORDER BY round, seq"), params)]


def in_flight_batch_ids(conn: psycopg.Connection, run: Run) -> list[str]:
    """The run's batches the API holds and the ledger has not yet seen end."""
    return [b.backend_batch_id for b in batches(conn, run, statuses=("submitted",)) if b.backend_batch_id]


def item_counts(conn: psycopg.Connection, run: Run) -> dict[str, int]:
    return dict(conn.execute(
        "SELECT status, count(*) FROM nightshift.items WHERE run_pk = %s GROUP BY status", (run.run_pk,)
    ).fetchall())


def failure_counts(conn: psycopg.Connection, run: Run) -> dict[str, int]:
    return dict(conn.execute(
        "SELECT error_type, count(*) FROM nightshift.items WHERE run_pk = %s AND status = 'failed' "
        "GROUP BY error_type ORDER BY 2 DESC", (run.run_pk,)
    ).fetchall())


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
