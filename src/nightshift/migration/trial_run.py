"""A model trial run outside Airflow (``nightshift trial``): the batch DAG's steps, in order, in one process.

Collect, then per round submit, wait (polled as the sensor polls: the workload's wait policy, the
run's deadline, the deadline's cancel), land; then finalize and report. The functions are the ones the
trial DAG's tasks call, so a trial run from the command line and one run from the UI are the same.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from nightshift.backends.base import BatchBackend
from nightshift.batch.collect import collect
from nightshift.batch.deadline import cancel_at_deadline
from nightshift.batch.finalize import finalize_run
from nightshift.batch.land import land_round
from nightshift.batch.ownership import AwaitingProof
from nightshift.batch.polling import CANCEL_GRACE_SECONDS, BatchSnapshot, WaitPolicy, WaitVerdict
from nightshift.batch.submit import Caps, NotAdmitted, submit_round
from nightshift.costs import price_table
from nightshift.dag_ids import trial_dag_id
from nightshift.ledger import batches as ledger_batches
from nightshift.ledger import items, trials
from nightshift.ledger.status import BatchStatus
from nightshift.migration import trial
from nightshift.workloads.definition import Workload

log = logging.getLogger(__name__)


def run_trial(conn: psycopg.Connection, backend: BatchBackend, workload: Workload,
              request: trial.TrialRequest, *, airflow_run_id: str | None = None,
              max_queued: int | None = None,
              sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Run a trial of ``workload`` (on its current model) on ``request.candidate``; return its report."""
    run_id = airflow_run_id or f"cli__{time.strftime('%Y%m%dT%H%M%S')}_{uuid.uuid4().hex[:8]}"
    record, run, candidate = trial.start(conn, workload, request, dag_id=trial_dag_id(workload.name),
                                         airflow_run_id=run_id)
    try:
        collect(conn, candidate, run)
        policy = WaitPolicy(candidate.batch.poll_interval_seconds, candidate.batch.max_poll_interval_seconds,
                            candidate.batch.max_consecutive_poll_failures)
        caps = Caps.for_workload(candidate, max_queued)
        for round_ in range(candidate.batch.retry_rounds + 1):
            if round_ and not items.waiting_for_round(conn, run.run_pk, round_):
                break
            if round_ and run.past_deadline():
                break
            batch_ids = _submit(conn, backend, candidate, run, round_, caps, policy, sleep)
            if batch_ids:
                wait(conn, backend, run, batch_ids, policy, sleep)
                land_round(conn, backend, candidate, run, round_)
        finalize_run(conn, run, backend, candidate)
    except Exception as exc:
        conn.rollback()
        trials.record_failure(conn, record.trial_pk, f"{type(exc).__name__}: {exc}"[:2000])
        conn.commit()
        raise
    return trial.report(conn, workload, trials.get(conn, record.trial_pk), price_table())


def _submit(conn, backend, candidate, run, round_, caps, policy: WaitPolicy, sleep) -> list[str]:
    """Submit the round; while the account's queue cap or a batch that may be ours holds it, wait and
    submit again (submitting is idempotent), as the submit task does by deferring."""
    while True:
        try:
            submit_round(conn, backend, candidate, run, round_, caps)
            break
        except (NotAdmitted, AwaitingProof) as waiting:
            if run.past_deadline():
                raise
            log.info("%s; trying again in %.0f s", waiting, policy.poll_interval)
            sleep(policy.poll_interval)
    return [b.backend_batch_id for b in ledger_batches.batches(
        conn, run, round_, (BatchStatus.SUBMITTED, BatchStatus.ENDED, BatchStatus.LANDED))]


def wait(conn: psycopg.Connection, backend: BatchBackend, run, batch_ids: list[str], policy: WaitPolicy,
         sleep: Callable[[float], None] = time.sleep) -> list[BatchSnapshot]:
    """Poll until every batch ended; at the run's deadline cancel the unfinished ones and wait (bounded)
    for them to end, as the sensor does. A poll failure is polled through as the policy allows."""
    failures, cancelled_at = 0, None
    while True:
        try:
            snapshots = [BatchSnapshot.of(backend.retrieve(b)) for b in batch_ids]
        except Exception as exc:
            failures += 1
            delay = policy.retry_delay(failures, backend.is_transient(exc))
            if delay is None:
                raise
            log.warning("poll failed (%d in a row): %r", failures, exc)
            sleep(delay)
            continue
        failures = 0
        for s in snapshots:
            ledger_batches.record_batch_state(conn, s.id, s.processing_status, s.request_counts, s.ended_at)
        conn.commit()
        log.info("%s", policy.progress_line(snapshots))
        verdict = policy.verdict(snapshots, now=time.time(), deadline=run.deadline_at.timestamp())
        if verdict is WaitVerdict.ENDED:
            return snapshots
        if verdict is WaitVerdict.DEADLINE:
            if cancelled_at is None:
                cancel_at_deadline(conn, backend, run, policy.unfinished(snapshots))
                cancelled_at = time.time()
            elif time.time() - cancelled_at > CANCEL_GRACE_SECONDS:
                unfinished = ", ".join(policy.unfinished(snapshots))
                raise TimeoutError(f"batches {unfinished} were cancelled at the run's deadline but had not "
                                   f"ended {CANCEL_GRACE_SECONDS:.0f} s later")
        sleep(policy.poll_interval)
