"""``nightshift.runs``: one row per night (an Airflow run of a workload's DAG)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, NamedTuple

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from nightshift.ledger.status import RunMode, RunStatus
from nightshift.workloads.definition import Workload


@dataclass(frozen=True)
class Run:
    run_pk: int
    workload: str
    dag_id: str
    airflow_run_id: str
    deadline_at: datetime
    status: RunStatus
    mode: RunMode = RunMode.QUEUE
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", RunStatus(self.status))
        object.__setattr__(self, "mode", RunMode(self.mode))

    @property
    def billed_on(self) -> date | None:
        """The day the API bills this run's work (its start, UTC): the price row in force then applies."""
        return None if self.created_at is None else self.created_at.astimezone(timezone.utc).date()

    @property
    def shadow(self) -> bool:
        """A shadow run writes a shadow table and leaves the queue to the streaming path."""
        return self.mode == RunMode.SHADOW

    @property
    def trial(self) -> bool:
        """A model trial's run writes the trial table; it holds no queue request (see ``model_trials``)."""
        return self.mode == RunMode.TRIAL

    @property
    def claimer(self) -> str:
        """How this run's claims are labelled in the request queue."""
        return f"nightshift:run:{self.run_pk}"

    def past_deadline(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(timezone.utc)) >= self.deadline_at


class Step(enum.StrEnum):
    """A step of a night whose failure leaves requests open (the key under ``details -> 'causes'``)."""

    SUBMIT = "submit"
    LAND = "land"


class Outcome(NamedTuple):
    """What a closed run recorded about itself."""

    status: RunStatus
    requests: int
    succeeded: int
    failed: int
    message: str | None


# The columns of Run, in its order.
_RUN_COLUMNS = sql.SQL("run_pk, workload, dag_id, airflow_run_id, deadline_at, status, mode, created_at")


_RETIRE_CLOSED_RUN = """
UPDATE nightshift.runs SET airflow_run_id = airflow_run_id || ' (attempt ' || run_pk || ')'
 WHERE dag_id = %s AND airflow_run_id = %s AND status = ANY(%s)
"""


def ensure_run(
    conn: psycopg.Connection, workload: Workload, *, dag_id: str, airflow_run_id: str,
    deadline: timedelta | None = None, mode: RunMode = RunMode.QUEUE,
    data_interval: tuple[datetime | None, datetime | None] = (None, None),
) -> Run:
    """The ledger run for an Airflow run, created on first call; later calls return it unchanged.

    An interval run (backfill) whose ledger run is already closed was run again by Airflow
    (``backfill create --reprocess-behavior``, a cleared run): it gets a new ledger run, so its
    interval is collected again; the closed one keeps its items and costs, renamed
    ``<airflow run id> (attempt <run_pk>)``.
    """
    deadline = deadline or timedelta(hours=workload.batch.deadline_hours)
    if RunMode(mode) == RunMode.INTERVAL:
        conn.execute(_RETIRE_CLOSED_RUN, (dag_id, airflow_run_id, [s.value for s in RunStatus if s.closed]))
    row = conn.execute(
        sql.SQL("""
        INSERT INTO nightshift.runs (workload, dag_id, airflow_run_id, mode, data_interval_start,
                                     data_interval_end, model, prompt_version, deadline_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now() + %s)
        ON CONFLICT (dag_id, airflow_run_id) DO UPDATE SET workload = EXCLUDED.workload
        RETURNING {}
        """).format(_RUN_COLUMNS),
        (workload.name, dag_id, airflow_run_id, RunMode(mode), *data_interval, workload.model,
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


def data_interval(conn: psycopg.Connection, run_pk: int) -> tuple[datetime | None, datetime | None]:
    return conn.execute("SELECT data_interval_start, data_interval_end FROM nightshift.runs WHERE run_pk = %s",
                        (run_pk,)).fetchone()


def shadow_window(conn: psycopg.Connection, run_pk: int) -> tuple[datetime, datetime]:
    """The window a shadow run copies requests from: its data interval, or the day before it started."""
    return conn.execute(
        "SELECT coalesce(data_interval_start, created_at - interval '1 day'), "
        "coalesce(data_interval_end, created_at) FROM nightshift.runs WHERE run_pk = %s",
        (run_pk,)).fetchone()


def record_collected(conn: psycopg.Connection, run_pk: int, total: int) -> None:
    """The run holds ``total`` requests: ``running``, or ``empty`` with none (a closed run stays closed)."""
    conn.execute(
        "UPDATE nightshift.runs SET requests = %s, status = CASE WHEN %s = 0 THEN 'empty' ELSE 'running' END "
        "WHERE run_pk = %s AND status IN ('collecting', 'running', 'empty')",
        (total, total, run_pk),
    )


def model(conn: psycopg.Connection, run_pk: int) -> str:
    return conn.execute("SELECT model FROM nightshift.runs WHERE run_pk = %s", (run_pk,)).fetchone()[0]


def close(conn: psycopg.Connection, run_pk: int, *, status: RunStatus, requests: int, succeeded: int,
          failed: int, rounds: int) -> None:
    """Record the run's end (its first ``finished_at`` stays)."""
    conn.execute(
        "UPDATE nightshift.runs SET status = %s, requests = %s, succeeded = %s, failed = %s, rounds = %s, "
        "finished_at = coalesce(finished_at, now()) WHERE run_pk = %s",
        (RunStatus(status), requests, succeeded, failed, rounds, run_pk),
    )


def outcome(conn: psycopg.Connection, run_pk: int) -> Outcome:
    status, *rest = conn.execute(
        "SELECT status, requests, succeeded, failed, message FROM nightshift.runs WHERE run_pk = %s",
        (run_pk,)).fetchone()
    return Outcome(RunStatus(status), *rest)


def set_message(conn: psycopg.Connection, run_pk: int, message: str) -> None:
    conn.execute("UPDATE nightshift.runs SET message = %s WHERE run_pk = %s", (message, run_pk))


def request_shape(conn: psycopg.Connection, run_pk: int) -> dict[str, Any] | None:
    """The request shape confirmed for the run, if it was (later rounds reuse it)."""
    return conn.execute("SELECT details -> 'request_shape' FROM nightshift.runs WHERE run_pk = %s",
                        (run_pk,)).fetchone()[0]


def record_request_shape(conn: psycopg.Connection, run_pk: int, shape: dict[str, Any],
                         capability_differences: Any) -> None:
    conn.execute("UPDATE nightshift.runs SET details = details || jsonb_build_object('request_shape', %s::jsonb, "
                 "'capability_differences', %s::jsonb) WHERE run_pk = %s",
                 (Jsonb(shape), Jsonb(capability_differences), run_pk))


def record_cause(conn: psycopg.Connection, run_pk: int, step: Step, cause: str | None) -> None:
    """Why ``step`` last stopped (None: it last completed); the items it left open end with it."""
    conn.execute("UPDATE nightshift.runs SET details = jsonb_set(details, '{causes}', "
                 "coalesce(details -> 'causes', '{}'::jsonb) || jsonb_build_object(%s::text, %s::text)) "
                 "WHERE run_pk = %s", (Step(step).value, cause, run_pk))
