"""The wait step: a sensor that defers to :class:`~nightshift.triggers.BatchesEndedTrigger`.

Deferrable by default (the wait can take hours; the triggerer holds thousands of them and no
worker slot is used). ``deferrable=False`` polls from the worker with the same policy.
"""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from nightshift.batch.polling import BatchSnapshot, all_ended, is_transient, progress_line
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

    def _round_batches(self, context) -> tuple[Any, list[str]]:
        from nightshift.batch.ledger import batches

        with self.db() as conn:
            run = self.ledger_run(conn, context)
            ids = [b.anthropic_batch_id for b in batches(conn, run, self.round, ("submitted", "ended", "landed"))]
        return run, ids

    def _poll_interval(self, context) -> float:
        return float(self.param(context, "poll_interval_seconds", self.workload.batch.poll_interval_seconds))

    def execute(self, context) -> Any:
        run, batch_ids = self._round_batches(context)
        if not batch_ids:
            raise AirflowSkipException(f"round {self.round} has no batch to wait for")
        if not self.deferrable:
            self.poke_interval = self._poll_interval(context)
            return super().execute(context)
        from nightshift.config import settings
        from nightshift.triggers import BatchesEndedTrigger

        interval = self._poll_interval(context)
        self.defer(
            trigger=BatchesEndedTrigger(
                conn_id=self.anthropic_conn_id or settings().anthropic_conn_id,
                batch_ids=batch_ids,
                deadline=run.deadline_at.timestamp(),
                poll_interval=interval,
                max_poll_interval=max(interval, self.workload.batch.max_poll_interval_seconds),
                max_consecutive_failures=self.workload.batch.max_consecutive_poll_failures,
                db_conn_id=self.db_conn_id or settings().db_conn_id,
            ),
            method_name="execute_complete",
        )

    def poke(self, context) -> bool:
        run, batch_ids = self._round_batches(context)
        client = self.client()
        try:
            snapshots = [BatchSnapshot.of(client.messages.batches.retrieve(b)) for b in batch_ids]
        except Exception as exc:
            self._consecutive_failures += 1
            if not is_transient(exc) or self._consecutive_failures >= self.workload.batch.max_consecutive_poll_failures:
                raise
            self.log.warning("poll failed (%d in a row): %r", self._consecutive_failures, exc)
            return False
        self._consecutive_failures = 0
        self.log.info("%s", progress_line(snapshots))
        self._record(snapshots)
        if all_ended(snapshots):
            return True
        if time.time() >= run.deadline_at.timestamp():
            self._deadline_passed([s.id for s in snapshots if not s.ended], run)
        return False

    def execute_complete(self, context, event: dict[str, Any] | None = None) -> dict:
        if not event or event.get("status") not in ("ended", "deadline", "error"):
            raise AirflowException(f"unexpected trigger event: {event!r}")
        snapshots = [BatchSnapshot(**b) for b in event.get("batches", [])]
        if snapshots:
            self._record(snapshots)
            self.log.info("%s", progress_line(snapshots))
        if event["status"] == "error":
            raise AirflowException(f"waiting for batches {', '.join(event.get('batch_ids', []))} failed: "
                                   f"{event.get('message')}")
        if event["status"] == "deadline":
            run, _ = self._round_batches(context)
            self._deadline_passed(event["unfinished"], run)
        return {"round": self.round, "batches": [s.as_dict() for s in snapshots]}

    def _record(self, snapshots: list[BatchSnapshot]) -> None:
        from nightshift.batch.ledger import record_batch_state

        with self.db() as conn:
            for s in snapshots:
                record_batch_state(conn, s.id, s.processing_status, s.request_counts, s.ended_at)
            conn.commit()

    def _deadline_passed(self, unfinished: list[str], run) -> None:
        client = self.client()
        for batch_id in unfinished:
            try:
                client.messages.batches.cancel(batch_id)
            except Exception as exc:
                self.log.warning("could not cancel batch %s: %r", batch_id, exc)
        message = (f"run {run.run_pk} passed its deadline ({run.deadline_at.isoformat()}) with "
                   f"{len(unfinished)} batch(es) unfinished; cancelled: {', '.join(unfinished)}")
        with self.db() as conn:
            conn.execute("UPDATE nightshift.runs SET message = %s WHERE run_pk = %s", (message, run.run_pk))
            conn.commit()
        raise AirflowFailException(message)  # retrying cannot bring a deadline back
