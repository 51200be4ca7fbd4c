"""The batch path's Airflow operators: collect, submit, land, finalize.

Each is a thin shell over a function in :mod:`nightshift.batch`; each is idempotent for its
Airflow run, because the ledger, not the task, remembers what was done. That is what makes
retries, cleared tasks and restarted workers safe.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from nightshift.config import settings
from nightshift.lineage import CollectLineage, FinalizeLineage, LandLineage
from nightshift.ui.links import AnthropicConsoleBatchLink, NightshiftRunLink


class NightshiftTask:
    """What every Nightshift task shares: its workload, its connections, its ledger run."""

    workload_name: str
    db_conn_id: str | None
    anthropic_conn_id: str | None

    @cached_property
    def workload(self):
        from nightshift.deployment import get_workload

        return get_workload(self.workload_name)

    def db(self):
        """The application database; a connection no retry will open (an unknown role or database, a
        refused password or port) fails the task at once, naming the role, database and host."""
        from nightshift import db

        conn_id = self.db_conn_id or settings().db_conn_id
        try:
            return db.connect(conn_id)
        except Exception as exc:
            self.fail_if_permanent(exc)
            raise

    def fail_if_permanent(self, exc: BaseException, backend=None, *, reached: bool = True) -> None:
        """Fail the task for good (no task retries burned) when retrying cannot fix ``exc``.

        ``reached``: the night has batches at the API already, so a refused connection is the API
        restarting (retried), not a wrong URL (see :mod:`nightshift.batch.permanent`)."""
        final = self.permanent(exc, backend, reached=reached)
        if final is not None:
            raise AirflowFailException(str(final)) from exc

    def permanent(self, exc: BaseException, backend=None, *, reached: bool = True):
        from nightshift import db
        from nightshift.batch.permanent import classify

        cfg = settings()
        db_conn_id = self.db_conn_id or cfg.db_conn_id
        try:
            dsn = db.dsn(db_conn_id)
        except Exception:  # naming the database is a courtesy; the classification stands without it
            dsn = None
        return classify(exc, backend=backend, reached=reached, dsn=dsn, db_conn_id=db_conn_id,
                        api_conn_id=self.anthropic_conn_id or cfg.anthropic_conn_id)

    def backend(self):
        """The workload's batch backend over the connection's client, its batch-endpoint calls held
        to the account-wide budget."""
        from nightshift import db
        from nightshift.batch.budget import BatchApiBudget, LedgerCallBudget
        from nightshift.hooks import batch_backend

        cfg = settings()
        budget = BatchApiBudget.of(cfg.batch_api_rpm, cfg.batch_api_window_seconds)
        call_budget = LedgerCallBudget(budget, db.dsn(self.db_conn_id or cfg.db_conn_id)) if budget else None
        return batch_backend(self.workload.backend, self.anthropic_conn_id or cfg.anthropic_conn_id,
                             call_budget=call_budget, console_batch_url=cfg.console_batch_url)

    def ledger_run(self, conn, context):
        """The night's ledger run; from here on the task's workload is on the model the run started on."""
        from nightshift.batch.ledger import get_run
        from nightshift.ledger import runs

        run = get_run(conn, dag_id=context["dag"].dag_id, airflow_run_id=context["run_id"])
        model = runs.model(conn, run.run_pk)
        if model != self.workload.model:
            self.workload = self.workload.with_model(model)
        return run

    def wait_policy(self, context=None):
        """How this run waits for its batches (the run's ``poll_interval_seconds`` param, else the
        workload's): one policy for the sensor, the trigger and the submit's waits."""
        from nightshift.batch.polling import WaitPolicy

        batch = self.workload.batch
        interval = float(self.param(context or {}, "poll_interval_seconds", batch.poll_interval_seconds))
        return WaitPolicy(interval, max(interval, batch.max_poll_interval_seconds), batch.max_consecutive_poll_failures)

    def wait_trigger(self, context, batch_ids: list[str], deadline: float):
        """The trigger that waits for ``batch_ids`` to end (or ``deadline``, epoch seconds), with the run's policy."""
        from nightshift.triggers import BatchesEndedTrigger

        policy = self.wait_policy(context)
        return BatchesEndedTrigger(
            conn_id=self.anthropic_conn_id or settings().anthropic_conn_id, batch_ids=batch_ids, deadline=deadline,
            poll_interval=policy.poll_interval, max_poll_interval=policy.max_poll_interval,
            max_consecutive_failures=policy.max_consecutive_failures,
            db_conn_id=self.db_conn_id or settings().db_conn_id, backend=self.workload.backend)

    @staticmethod
    def param(context, name: str, default: Any = None) -> Any:
        value = (context.get("params") or {}).get(name)
        return default if value is None else value


class _NightshiftOperator(NightshiftTask, BaseOperator):
    template_fields = ("workload_name",)
    operator_extra_links = (NightshiftRunLink(),)
    ui_color = "#1f3a5f"
    ui_fgcolor = "#ffffff"

    def __init__(self, *, workload: str, db_conn_id: str | None = None, anthropic_conn_id: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workload_name = workload
        self.db_conn_id = db_conn_id
        self.anthropic_conn_id = anthropic_conn_id


class CollectRequestsOperator(CollectLineage, _NightshiftOperator):
    """Claim the night's pending requests into a new ledger run; skip downstream on an empty night.

    ``source="interval"`` (the backfill DAGs) takes the source rows of the run's data interval
    instead of the queue, skipping rows already at the current prompt version unless the
    ``reprocess`` param is set.
    """

    def __init__(self, *, source: str = "queue", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if source not in ("queue", "interval"):
            raise ValueError(f"source must be 'queue' or 'interval', not {source!r}")
        self.source = source

    def execute(self, context) -> int:
        from nightshift.batch.collect import collect
        from nightshift.batch.ledger import ensure_run
        from nightshift.contract import ContractMismatch

        run_type = getattr(context.get("dag_run"), "run_type", None)
        if self.source == "interval" and getattr(run_type, "value", run_type) == "scheduled":
            # A backfill DAG needs a timetable for `airflow backfill create`, and must be unpaused
            # for its runs to start; the scheduled run that unpausing creates is not a backfill.
            raise AirflowSkipException("backfill DAGs act on backfill and manual runs only; the nightly DAG "
                                       "covers scheduled nights")

        from nightshift.ledger import items
        from nightshift.ledger.schema import SchemaOutOfDate, require_current
        from nightshift.ledger.status import DeliveryMode, RunMode
        from nightshift.migration.modes import ensure_shadow_table, get_mode
        from nightshift.routing import SwitchedModelUnfit, model_in_force

        deadline_seconds = self.param(context, "deadline_seconds")
        with self.db() as conn:
            try:
                require_current(conn)
            except SchemaOutOfDate as exc:
                raise AirflowFailException(str(exc)) from None
            try:
                self.workload = model_in_force(conn, self.workload)
            except SwitchedModelUnfit as exc:  # the file must change first: a retry would meet it again
                raise AirflowFailException(str(exc)) from None
            mode = RunMode.INTERVAL if self.source == "interval" else (
                RunMode.SHADOW if get_mode(conn, self.workload) == DeliveryMode.SHADOW else RunMode.QUEUE)
            if mode == RunMode.SHADOW:
                ensure_shadow_table(conn, self.workload)
            run = ensure_run(
                conn, self.workload, dag_id=context["dag"].dag_id, airflow_run_id=context["run_id"],
                deadline=timedelta(seconds=float(deadline_seconds)) if deadline_seconds else None,
                data_interval=(context.get("data_interval_start"), context.get("data_interval_end")), mode=mode,
            )
            self.lineage_run = run
            self.ledger_run(conn, context)  # a retried collect keeps the model its run started on
            if run.shadow:
                self.log.info("%s is in shadow mode: answering the window's requests into %s; the streaming "
                              "path keeps the queue and the destination", self.workload_name, "a shadow table")
            if run.status.closed:
                self.log.info("run %s is already closed (%s); claiming nothing more", run.run_pk, run.status)
                total = items.count(conn, run.run_pk)
            else:
                try:
                    total = collect(conn, self.workload, run, limit=self.param(context, "max_requests"),
                                    reprocess=bool(self.param(context, "reprocess", False)))
                except ContractMismatch as exc:  # the tables must change first: a retry would meet it again
                    raise AirflowFailException(str(exc)) from None
        if total == 0:
            if self.source == "interval":
                raise AirflowSkipException(
                    f"nothing to do for {context.get('data_interval_start')} – {context.get('data_interval_end')}: "
                    f"every {self.workload_name} row of the interval is at prompt version "
                    f"{self.workload.prompt_version} (set reprocess to redo them)")
            raise AirflowSkipException(f"empty night: no pending {self.workload_name} requests")
        return total


class _RoundOperator(_NightshiftOperator):
    """A step of one round: 0 is the whole night, later rounds only the items worth retrying."""

    def __init__(self, *, round: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.round = round


class SubmitBatchesOperator(_RoundOperator):
    """Submit one round as as many batches as the API's limits need."""

    operator_extra_links = (AnthropicConsoleBatchLink(), NightshiftRunLink())

    def execute(self, context) -> dict:
        from nightshift.batch.ownership import AwaitingProof
        from nightshift.batch.permanent import PermanentFailure, release_unsubmitted
        from nightshift.batch.submit import Caps, NotAdmitted, submit_round
        from nightshift.ledger import items

        with self.db() as conn:
            run = self.ledger_run(conn, context)
            if self.round > 0:
                waiting = items.waiting_for_round(conn, run.run_pk, self.round)
                if not waiting:
                    raise AirflowSkipException(f"nothing to retry in round {self.round}")
                if run.past_deadline():
                    raise AirflowSkipException(
                        f"the run's deadline ({run.deadline_at.isoformat()}) has passed: no retry round "
                        f"{self.round}; finalize records the {waiting} open items as failed")
            caps = Caps.for_workload(self.workload, settings().max_queued_requests,
                                     max_requests=self.param(context, "max_requests_per_batch"),
                                     max_bytes=self.param(context, "max_batch_bytes"))
            backend = self.backend()
            try:
                result = submit_round(conn, backend, self.workload, run, self.round, caps)
            except NotAdmitted as waiting:
                from nightshift.batch.ledger import in_flight_batch_ids

                self.log.info("%s", waiting)
                self._defer_until_admitted(context, waiting, run, in_flight_batch_ids(conn, run))
            except AwaitingProof as waiting:
                self.log.warning("%s", waiting)
                self._defer_until_ended(context, waiting.batch_ids, run)
            except Exception as exc:  # the same params, the same account: fail now, no task retries
                final = self.permanent(exc, backend, reached=self.round > 0)
                if final is None:
                    raise
                message = str(final)
                if isinstance(final, PermanentFailure):  # nothing is consumed that could run tomorrow
                    conn.rollback()
                    released = release_unsubmitted(conn, run, final)
                    message += f". The {released} requests not submitted are back in the queue, pending"
                raise AirflowFailException(message) from exc
        if not result.batch_ids:
            raise AirflowSkipException(f"round {self.round}: no request to submit")
        return result.as_dict()


    def _defer_until_admitted(self, context, waiting, run, own_batch_ids: list[str]) -> None:
        from nightshift.triggers import AdmissionTrigger

        self.defer(trigger=AdmissionTrigger(db_conn_id=self.db_conn_id or settings().db_conn_id,
                                            needed=waiting.needed, cap=waiting.cap,
                                            poll_interval=float(self.param(context, "poll_interval_seconds",
                                                                           self.workload.batch.poll_interval_seconds)),
                                            conn_id=self.anthropic_conn_id or settings().anthropic_conn_id,
                                            own_batch_ids=own_batch_ids, deadline=run.deadline_at.timestamp(),
                                            backend=self.workload.backend),
                   method_name="resume_after_admission")

    def _defer_until_ended(self, context, batch_ids: list[str], run) -> None:
        """Wait in the triggerer for batches that may be ours to end (or for a while: another of our
        intents may record one meanwhile), then submit again, which proves them or looks again."""
        import time

        from nightshift.batch.ownership import PROOF_RECHECK_SECONDS

        interval = float(self.param(context, "poll_interval_seconds", self.workload.batch.poll_interval_seconds))
        deadline = min(run.deadline_at.timestamp(), time.time() + max(PROOF_RECHECK_SECONDS, interval))
        self.defer(trigger=self.wait_trigger(context, batch_ids, deadline), method_name="resume_after_proof")

    def resume_after_proof(self, context, event=None) -> dict:
        """The suspects have ended (or the deadline came): submitting again proves them, then adopts
        the one that is ours or creates what none was."""
        return self.execute(context)

    def resume_after_admission(self, context, event=None) -> dict:
        """Submitting is idempotent: carry on where the last attempt stopped (past the deadline,
        that submits nothing more, and the wait cancels what is already in flight)."""
        return self.execute(context)


class LandResultsOperator(LandLineage, _RoundOperator):
    """Stream ended batches' results into the destination table, the ledger and the queue."""

    def execute(self, context) -> dict:
        from nightshift.batch.land import land_round

        with self.db() as conn:
            run = self.lineage_run = self.ledger_run(conn, context)
            backend = self.backend()
            try:
                self.lineage_result = land_round(conn, backend, self.workload, run, self.round)
                return self.lineage_result.as_dict()
            except Exception as exc:  # what landed is committed; later rounds would fail the same way
                self.fail_if_permanent(exc, backend)
                raise


class FinalizeRunOperator(FinalizeLineage, _NightshiftOperator):
    """Close the run (every request terminal), summarise it, and publish the destination Asset.

    Runs whatever happened upstream (``all_done``), so a failed or timed-out night still
    leaves every request in a terminal state. Publishes the Asset only when rows landed:
    downstream DAGs run exactly when the streaming path would have made them run.
    """

    def execute(self, context) -> dict:
        from nightshift.batch.finalize import finalize_run

        with self.db() as conn:
            try:
                run = self.ledger_run(conn, context)
            except LookupError:
                raise AirflowSkipException("no ledger run: collect never started") from None
            backend = self._backend_if_possible()
            try:
                summary = finalize_run(conn, run, backend, self.workload)
            except Exception as exc:
                self.fail_if_permanent(exc, backend)
                raise
        self.lineage_run, self.lineage_summary = run, summary
        self.log.info("run summary: %s", summary.as_dict())
        if summary.succeeded == 0:
            raise AirflowSkipException(f"no {self.workload_name} result landed in this run: no Asset event")
        if run.shadow:
            raise AirflowSkipException(f"shadow run: {summary.succeeded} rows in the shadow table; the destination "
                                       "and its Asset belong to the streaming path until the switch")
        return summary.as_dict()


    def _backend_if_possible(self):
        """Finalize closes the run even when the API connection cannot be built."""
        try:
            return self.backend()
        except Exception as exc:
            self.log.warning("no batch backend (%r): suspected late duplicates are looked at next time", exc)
            return None


class NightVerdictOperator(_NightshiftOperator):
    """Fail the DAG run when the night did not finish (a deadline passed, a step failed).

    ``finalize`` cannot do this itself: it must succeed to publish the Asset for the rows that
    did land. This leaf task turns the ledger's verdict into the DAG run's state, so a failed
    night shows red in the UI and reaches whatever alerting watches DAG runs.
    """

    def execute(self, context) -> dict:
        from nightshift.ledger import runs
        from nightshift.ledger.status import RunStatus

        with self.db() as conn:
            try:
                run = self.ledger_run(conn, context)
            except LookupError:
                if self._collect_skipped(context):
                    raise AirflowSkipException("collect skipped before recording a run: nothing to judge") from None
                raise AirflowFailException("the night never started: collect did not record a run") from None
            status, requests, succeeded, failed, message = runs.outcome(conn, run.run_pk)
        verdict = {"run_pk": run.run_pk, "status": status, "requests": requests, "succeeded": succeeded,
                   "failed": failed}
        if status in (RunStatus.COLLECTING, RunStatus.RUNNING):
            raise AirflowFailException(f"run {run.run_pk} was not closed: an upstream step failed before finalize")
        if status == RunStatus.FAILED:
            text = f"run {run.run_pk} did not finish: {succeeded} of {requests} requests succeeded. {message or ''}"
            self._alert(context, text.strip())
            raise AirflowFailException(text.strip())
        threshold = self.workload.failure_threshold
        if requests and failed / requests > threshold:
            self._alert(context, f"run {run.run_pk} of {self.workload_name}: {failed} of {requests} requests failed "
                                 f"({failed / requests:.1%}), above the workload's threshold of {threshold:.1%}")
        self.log.info("night %s: %s", status, verdict)
        return verdict

    @staticmethod
    def _collect_skipped(context) -> bool:
        ti = context.get("ti")
        if ti is None or not hasattr(ti, "get_task_states"):
            return False
        states = ti.get_task_states(dag_id=context["dag"].dag_id, task_ids=["collect"], run_ids=[context["run_id"]])
        return any(state == "skipped" for run in states.values() for state in run.values())

    def _alert(self, context, message: str) -> None:
        from nightshift.notifications import night_notifier

        try:
            night_notifier(message)(context)
        except Exception:
            self.log.exception("the notifier failed; the alert was: %s", message)


class DefinitionErrorOperator(BaseOperator):
    """Stands in for the steps of a workload whose definition does not load: fails at once, saying why.

    The DAG of a broken workload still exists and still runs each night, so the failure (and
    its alert) names the file and the field, while every other workload's night runs as usual.
    """

    template_fields = ()
    ui_color = "#8b1e1e"
    ui_fgcolor = "#ffffff"

    def __init__(self, *, workload: str, error: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workload_name = workload
        self.error = error

    def execute(self, context) -> None:
        raise AirflowFailException(f"workload {self.workload_name!r} cannot run: {self.error}")
