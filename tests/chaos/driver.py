"""A night driven step by step the way the DAG runs it, with Airflow's task retries.

Each step is a task: it gets a fresh database connection and the workload's backend over the
provider's client built from the ``anthropic_default`` connection, and is tried up to
``TASK_TRIES`` times (the DAGs have ``retries=2``), so a fault that outlasts the SDK's own retries fails one attempt, not the
night. The wait is the real trigger in an event loop. Steps can also run in a child process
(:mod:`tests.chaos.child`) so a test can kill them outright.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import psycopg

from nightshift.batch.collect import collect
from nightshift.batch.errors import RetryWontHelp
from nightshift.batch.finalize import RunSummary, finalize_run
from nightshift.batch.land import land_round
from nightshift.batch.ledger import Run, ensure_run, get_run
from nightshift.batch.ownership import AwaitingProof
from nightshift.batch.submit import Caps, submit_round
from nightshift.paths import PROJECT_ROOT
from nightshift.triggers import BatchesEndedTrigger
from nightshift.deployment import get_workload
from nightshift.workloads.definition import Workload

TICKETS = get_workload("ticket_classification")
TASK_TRIES = 3
PROOF_WAITS = 4
DAG_ID = "chaos_ticket_classification"


def provider_backend():
    """The workload's backend as the operators build it, over the provider's client for ``anthropic_default``."""
    from nightshift.hooks import batch_backend

    return batch_backend(TICKETS.backend, "anthropic_default")


@contextlib.asynccontextmanager
async def provider_async_backend():
    from nightshift.hooks import async_batch_backend

    backend = await async_batch_backend(TICKETS.backend, "anthropic_default")
    try:
        yield backend
    finally:
        await backend.aclose()


def wait_trigger(batch_ids: list[str], **overrides: Any) -> BatchesEndedTrigger:
    kwargs = dict(conn_id="anthropic_default", batch_ids=batch_ids, deadline=time.time() + 120, poll_interval=0.05,
                  max_poll_interval=0.2, max_consecutive_failures=3, db_conn_id="nightshift_db")
    return BatchesEndedTrigger(**{**kwargs, **overrides})


async def first_event(trigger: BatchesEndedTrigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger ended without an event")


class WaitFailed(RuntimeError):
    """What the sensor raises on an error event; Airflow retries the task."""


@dataclass
class ChaosNight:
    dsn: str
    airflow_run_id: str = "chaos"
    caps: Caps = field(default_factory=lambda: Caps(max_requests=4))
    failures: list[tuple[str, str]] = field(default_factory=list)
    stopped: Exception | None = None  # what failed a step for good (the DAG goes on to finalize)
    awaited_proof: list[list[str]] = field(default_factory=list)  # suspects a submit waited for
    workload: Workload = TICKETS  # a test's own (a cascade) reaches child steps as its definition

    def task(self, name: str, body: Callable[[psycopg.Connection], Any]) -> Any:
        for attempt in range(1, TASK_TRIES + 1):
            try:
                with psycopg.connect(self.dsn) as conn:
                    return body(conn)
            except Exception as exc:
                self.failures.append((name, repr(exc)))
                if attempt == TASK_TRIES or isinstance(exc, RetryWontHelp):  # the operator's AirflowFailException
                    raise

    def start(self) -> Run:
        def body(conn):
            run = ensure_run(conn, self.workload, dag_id=DAG_ID, airflow_run_id=self.airflow_run_id)
            collect(conn, self.workload, run)
            return run
        return self.task("collect", body)

    def run(self, conn: psycopg.Connection) -> Run:
        return get_run(conn, dag_id=DAG_ID, airflow_run_id=self.airflow_run_id)

    def submit(self, round_: int = 0) -> list[str]:
        """As the operator does: batches that may be the round's own but still run are waited for
        (the operator defers to the wait trigger on them), then the round is submitted again."""
        def body(conn):
            for _ in range(PROOF_WAITS):
                try:
                    return submit_round(conn, provider_backend(), self.workload, self.run(conn), round_,
                                        self.caps).batch_ids
                except AwaitingProof as waiting:
                    self.awaited_proof.append(waiting.batch_ids)
                    asyncio.run(first_event(wait_trigger(waiting.batch_ids, deadline=time.time() + 5)))
            raise AssertionError(f"still awaiting proof after {PROOF_WAITS} waits: {self.awaited_proof}")
        return self.task("submit", body)

    def wait(self, batch_ids: list[str], **trigger_overrides: Any) -> dict:
        def body(conn):
            event = asyncio.run(first_event(wait_trigger(batch_ids, **trigger_overrides)))
            if event["status"] != "ended":
                raise WaitFailed(f"wait ended with {event}")
            return event
        return self.task("wait", body)

    def airflow_context(self, **params: Any) -> dict:
        from types import SimpleNamespace

        return {"dag": SimpleNamespace(dag_id=DAG_ID), "run_id": self.airflow_run_id, "params": params}

    def wait_as_the_sensor(self, round_: int = 0) -> dict:
        """The real ``BatchesEndedSensor`` as Airflow runs it: each deferral's trigger runs to its
        first event, which goes to the method the deferral names. A failure fails the task for good
        when it is an ``AirflowFailException`` (then land is upstream_failed and does not run)."""
        from airflow.sdk.exceptions import TaskDeferred

        from nightshift.sensors import BatchesEndedSensor

        sensor = BatchesEndedSensor(task_id="wait", workload=TICKETS.name, round=round_)
        context = self.airflow_context(poll_interval_seconds=0.05)
        step = lambda: sensor.execute(context)  # noqa: E731
        while True:
            try:
                return step()
            except TaskDeferred as deferred:
                event = asyncio.run(first_event(deferred.trigger))
                method = getattr(sensor, deferred.method_name)
                step = lambda method=method, event=event: method(context, event=event)  # noqa: E731

    def land(self, round_: int = 0):
        return self.task("land", lambda conn: land_round(conn, provider_backend(), self.workload,
                                                         self.run(conn), round_))

    def finalize(self) -> RunSummary:
        return self.task("finalize", lambda conn: finalize_run(conn, self.run(conn), provider_backend(),
                                                               self.workload))

    def retries_pending(self, conn: psycopg.Connection, run: Run) -> bool:
        return conn.execute("SELECT count(*) FROM nightshift.items WHERE run_pk = %s AND status = 'retry'",
                            (run.run_pk,)).fetchone()[0] > 0

    def whole_night(self, before_wait: Callable[[int], None] = lambda round_: None) -> tuple[Run, RunSummary]:
        """The DAG's order; a step failing for good stops the rounds, and finalize still runs (all_done)."""
        run = self.start()
        try:
            for round_ in range(self.workload.batch.retry_rounds + 1):
                if round_:
                    with psycopg.connect(self.dsn) as conn:
                        if not self.retries_pending(conn, run):
                            break
                batch_ids = self.submit(round_)
                if batch_ids:
                    before_wait(round_)
                    self.wait(batch_ids)
                    self.land(round_)
        except RetryWontHelp as final:
            self.stopped = final
        return run, self.finalize()

    def in_child(self, step: str, **args: Any) -> subprocess.Popen:
        """Start ``step`` in a process of its own (to be killed or awaited by the test)."""
        spec = {"dsn": self.dsn, "dag_id": DAG_ID, "airflow_run_id": self.airflow_run_id, **args}
        if self.workload is not TICKETS:
            spec["workload"] = self.workload.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        spec = json.dumps(spec)
        return subprocess.Popen([sys.executable, "-m", "tests.chaos.child", step, spec], cwd=PROJECT_ROOT,
                                env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def until(predicate: Callable[[], bool], what: str, timeout: float = 60.0, child: subprocess.Popen | None = None
          ) -> None:
    """Wait for a condition someone else makes true (polling it, not sleeping a guessed time)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if child is not None and child.poll() is not None:
            raise AssertionError(f"the child exited ({child.returncode}) before {what}:\n"
                                 f"{child.stdout.read().decode(errors='replace')[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
