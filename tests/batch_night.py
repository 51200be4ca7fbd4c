"""Drive one batch night through the pipeline's functions, as the DAG's tasks do, in order."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from nightshift.backends.base import BatchBackend
from nightshift.batch.collect import collect
from nightshift.batch.finalize import RunSummary, finalize_run
from nightshift.batch.land import land_round
from nightshift.batch.ledger import Run, batches, ensure_run, get_run
from nightshift.batch.submit import Caps, submit_round
from nightshift.config import settings
from nightshift.workloads.definition import Workload


@dataclass
class Night:
    run: Run
    summary: RunSummary | None = None
    submitted_rounds: list[int] = field(default_factory=list)


def wait_until_ended(backend: BatchBackend, batch_ids: list[str], emulator=None, timeout: float = 30) -> None:
    """Poll like the sensor does; with a frozen emulator clock, advance it instead of waiting."""
    deadline = time.monotonic() + timeout
    while True:
        states = [backend.retrieve(b).processing_status for b in batch_ids]
        if all(s == "ended" for s in states):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"batches not ended: {dict(zip(batch_ids, states))}")
        if emulator is not None:
            emulator.advance(60)


def run_night(conn: psycopg.Connection, backend: BatchBackend, workload: Workload, *,
              caps: Caps | None = None, airflow_run_id: str = "manual__night", emulator=None,
              rounds: int | None = None, mode: str = "queue", data_interval=(None, None),
              reprocess: bool = False, started_at: datetime | None = None) -> Night:
    """``started_at`` back-dates the run (the day it is billed, so the price row in force then applies)."""
    run = ensure_run(conn, workload, dag_id=f"test_{workload.name}", airflow_run_id=airflow_run_id, mode=mode,
                     data_interval=data_interval)
    if started_at is not None:
        conn.execute("UPDATE nightshift.runs SET created_at = %s WHERE run_pk = %s", (started_at, run.run_pk))
        conn.commit()
        run = get_run(conn, dag_id=run.dag_id, airflow_run_id=run.airflow_run_id)
    night = Night(run)
    if collect(conn, workload, run, reprocess=reprocess) == 0:
        night.summary = finalize_run(conn, run)
        return night
    caps = caps or Caps.for_workload(workload, settings().max_queued_requests)
    for round_ in range((workload.batch.retry_rounds if rounds is None else rounds) + 1):
        if round_ and not conn.execute("SELECT count(*) FROM nightshift.items WHERE run_pk = %s AND status = 'retry'",
                                       (run.run_pk,)).fetchone()[0]:
            break
        result = submit_round(conn, backend, workload, run, round_, caps)
        night.submitted_rounds.append(round_)
        if result.batch_ids:
            wait_until_ended(backend, result.batch_ids, emulator)
            land_round(conn, backend, workload, run, round_)
    night.summary = finalize_run(conn, run)
    return night


def batch_rows(conn: psycopg.Connection, run: Run, round_: int | None = None):
    return batches(conn, run, round_)
