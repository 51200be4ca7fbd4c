"""The wait step: a sensor that defers to :class:`~nightshift.triggers.BatchesEndedTrigger`.

Deferrable by default (the wait can take hours; the triggerer holds thousands of them and no
worker slot is used). ``deferrable=False`` polls from the worker with the same policy.
"""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from nightshift.batch.polling import CANCEL_GRACE_SECONDS, BatchSnapshot, WaitVerdict
from nightshift.operators import NightshiftTask
from nightshift.ui.links import AnthropicConsoleBatchLink, NightshiftRunLink


class BatchesEndedSensor(NightshiftTask, BaseSensorOperator):
    template_fields = ("workload_name",)
    operator_extra_links = (AnthropicConsoleBatchLink(), NightshiftRunLink())
    ui_color = "#3d5a80"
    ui_fgcolor = "#ffffff"

    def __init__(self, *, workload: str, round: int = 0, deferrable: bool = True, db_conn_id: str | None = None,
                 anthropic_conn_id: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("timeout", 72 * 3600)  # the run's own deadline is what normally ends a wait
        super().__init__(**kwargs)
        self.workload_name = workload
        self.round = round
        self.deferrable = deferrable
        self.db_conn_id = db_conn_id
        self.anthropic_conn_id = anthropic_conn_id
        self._consecutive_failures = 0
        self._cancelled_at: float | None = None  # non-deferrable: when the deadline's cancel was sent

    def _round_batches(self, context) -> tuple[Any, list[str]]:
        from nightshift.batch.ledger import batches
        from nightshift.ledger.status import BatchStatus

        with self.db() as conn:
            run = self.ledger_run(conn, context)
            ids = [b.backend_batch_id for b in batches(
                conn, run, self.round, (BatchStatus.SUBMITTED, BatchStatus.ENDED, BatchStatus.LANDED))]
        return run, ids

    def execute(self, context) -> Any:
        run, batch_ids = self._round_batches(context)
        if not batch_ids:
            raise AirflowSkipException(f"round {self.round} has no batch to wait for")
        if not self.deferrable:
            self.poke_interval = self.wait_policy(context).poll_interval
            return super().execute(context)
        self.defer(trigger=self.wait_trigger(context, batch_ids, run.deadline_at.timestamp()),
                   method_name="execute_complete")

    def poke(self, context) -> bool:
        run, batch_ids = self._round_batches(context)
        policy = self.wait_policy(context)
        backend = self.backend()
        try:
            snapshots = [BatchSnapshot.of(backend.retrieve(b)) for b in batch_ids]
        except Exception as exc:
            self._consecutive_failures += 1
            self.fail_if_permanent(exc, backend)
            if policy.retry_delay(self._consecutive_failures, backend.is_transient(exc)) is None:
                raise
            self.log.warning("poll failed (%d in a row): %r", self._consecutive_failures, exc)
            return False
        self._consecutive_failures = 0
        self.log.info("%s", policy.progress_line(snapshots))
        polled_at = time.time()
        verdict = policy.verdict(snapshots, now=polled_at, deadline=run.deadline_at.timestamp())
        next_poll_at = None if verdict is WaitVerdict.ENDED else polled_at + self.poke_interval
        self._record(snapshots, poll=(batch_ids, polled_at, next_poll_at))
        if verdict is WaitVerdict.ENDED:
            return True
        if verdict is WaitVerdict.DEADLINE and self._cancelled_at is None:
            self._cancel_at_deadline(policy.unfinished(snapshots), run)
            self._cancelled_at = time.time()
        elif self._cancelled_at is not None and time.time() - self._cancelled_at > CANCEL_GRACE_SECONDS:
            self._cancelled_batches_did_not_end(policy.unfinished(snapshots))
        return False

    def execute_complete(self, context, event: dict[str, Any] | None = None) -> dict:
        snapshots = self._observed(event)
        if event["status"] == "error":
            message = f"waiting for batches {', '.join(event.get('batch_ids', []))} failed: {event.get('message')}"
            if event.get("permanent"):  # the trigger saw what no retry fixes: no task retries burned
                raise AirflowFailException(message)
            raise AirflowException(message)
        if event["status"] == "deadline":
            run, batch_ids = self._round_batches(context)
            self._cancel_at_deadline(event["unfinished"], run)
            # wait (bounded) for the cancelled batches to end, so land takes what was paid for
            self.defer(trigger=self.wait_trigger(context, batch_ids, time.time() + CANCEL_GRACE_SECONDS),
                       method_name="execute_after_cancel")
        return {"round": self.round, "batches": [s.as_dict() for s in snapshots]}

    def execute_after_cancel(self, context, event: dict[str, Any] | None = None) -> dict:
        """The cancelled batches have ended: landing goes on (the verdict fails the night later)."""
        snapshots = self._observed(event)
        if event["status"] == "error":
            message = f"waiting for the cancelled batches failed: {event.get('message')}"
            raise (AirflowFailException if event.get("permanent") else AirflowException)(message)
        if event["status"] == "deadline":
            self._cancelled_batches_did_not_end(event["unfinished"])
        return {"round": self.round, "batches": [s.as_dict() for s in snapshots], "deadline_passed": True}

    def _observed(self, event: dict[str, Any] | None) -> list[BatchSnapshot]:
        """A trigger event's batch states, recorded in the ledger and logged."""
        if not event or event.get("status") not in ("ended", "deadline", "error"):
            raise AirflowException(f"unexpected trigger event: {event!r}")
        snapshots = [BatchSnapshot(**b) for b in event.get("batches", [])]
        if snapshots:
            self._record(snapshots)
            self.log.info("%s", self.wait_policy().progress_line(snapshots))
        return snapshots

    def _record(self, snapshots: list[BatchSnapshot],
                poll: tuple[list[str], float, float | None] | None = None) -> None:
        """Batch states, and with ``poll`` (batch ids, polled at, next poll at; epoch seconds) the poll times."""
        from datetime import datetime, timezone

        from nightshift.batch.ledger import record_batch_state, record_poll

        with self.db() as conn:
            for s in snapshots:
                record_batch_state(conn, s.id, s.processing_status, s.request_counts, s.ended_at)
            if poll:
                batch_ids, polled_at, next_poll_at = poll
                record_poll(conn, batch_ids, datetime.fromtimestamp(polled_at, timezone.utc),
                            None if next_poll_at is None else datetime.fromtimestamp(next_poll_at, timezone.utc))
            conn.commit()

    def _cancel_at_deadline(self, unfinished: list[str], run) -> None:
        from nightshift.batch.deadline import cancel_at_deadline

        with self.db() as conn:
            cancel_at_deadline(conn, self.backend(), run, unfinished)

    def _cancelled_batches_did_not_end(self, unfinished: list[str]) -> None:
        raise AirflowFailException(  # retrying cannot bring a deadline back
            f"batches {', '.join(unfinished)} were cancelled at the run's deadline but had not ended "
            f"{CANCEL_GRACE_SECONDS:.0f} s later: their results cannot be landed")
