"""The model trial DAG's operators: the batch path's steps on the trial's candidate model.

Each step runs the workload as :meth:`Workload.with_model` gives it for the DAG run's ``candidate``
param, over the same core functions as ``nightshift trial``
(:mod:`nightshift.migration.trial`, :mod:`nightshift.migration.trial_run`). Land and finalize are
the batch path's functions; their operators here report no destination lineage and publish no
Asset, since a trial writes only its trial table.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from nightshift.operators import NightshiftTask, SubmitBatchesOperator, _NightshiftOperator, _RoundOperator


class OnCandidate(NightshiftTask):
    """A step that acts on the workload as it runs on the DAG run's ``candidate`` model."""

    def use_candidate(self, context) -> None:
        from nightshift.deployment import get_workload

        candidate = self.param(context, "candidate")
        if not candidate:
            raise AirflowFailException("a model trial needs the candidate param: trigger the DAG with "
                                       '{"candidate": "<model id>"}')
        try:
            self.__dict__["workload"] = get_workload(self.workload_name).with_model(candidate)
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from None


class TrialCollectOperator(OnCandidate, _NightshiftOperator):
    """Record the trial and its run, and take its sample (idempotent per DAG run)."""

    def execute(self, context) -> dict:
        from datetime import date

        from nightshift.batch.collect import collect
        from nightshift.deployment import get_workload
        from nightshift.ledger import items
        from nightshift.ledger.schema import SchemaOutOfDate, require_current
        from nightshift.migration.trial import DEFAULT_SAMPLE, TrialError, TrialRequest, start

        def day(name: str) -> date | None:
            text = self.param(context, name)
            try:
                return None if text is None else date.fromisoformat(str(text))
            except ValueError:
                raise AirflowFailException(f"param {name}: {text!r} is not a date (YYYY-MM-DD)") from None

        self.use_candidate(context)
        request = TrialRequest(self.param(context, "candidate"),
                               int(self.param(context, "sample", DEFAULT_SAMPLE)), day("from"), day("to"),
                               self.param(context, "seed"))
        with self.db() as conn:
            try:
                require_current(conn)
                trial, run, candidate = start(conn, get_workload(self.workload_name), request,
                                              dag_id=context["dag"].dag_id, airflow_run_id=context["run_id"])
            except (SchemaOutOfDate, TrialError) as exc:
                raise AirflowFailException(str(exc)) from None
            total = items.count(conn, run.run_pk) if run.status.closed else collect(conn, candidate, run)
        self.log.info("trial #%s of %s on %s: %d sampled keys in run %s", trial.trial_pk, self.workload_name,
                      candidate.model, total, run.run_pk)
        return {"trial_pk": trial.trial_pk, "run_pk": run.run_pk, "sampled": total}


class TrialSubmitOperator(OnCandidate, SubmitBatchesOperator):
    """The batch DAG's submit (with its deferrals), on the candidate model."""

    def execute(self, context) -> dict:
        self.use_candidate(context)
        return super().execute(context)


class TrialLandOperator(OnCandidate, _RoundOperator):
    """Land the round's results into the trial table (the run is a trial run: see ``SliceWriter``)."""

    def execute(self, context) -> dict:
        from nightshift.batch.land import land_round

        self.use_candidate(context)
        with self.db() as conn:
            run = self.ledger_run(conn, context)
            backend = self.backend()
            try:
                return land_round(conn, backend, self.workload, run, self.round).as_dict()
            except Exception as exc:
                self.fail_if_permanent(exc, backend)
                raise


class TrialFinalizeOperator(OnCandidate, _NightshiftOperator):
    """Close the trial's run, every sampled key in a terminal state (runs whatever happened upstream)."""

    def execute(self, context) -> dict:
        from nightshift.batch.finalize import finalize_run

        self.use_candidate(context)
        with self.db() as conn:
            try:
                run = self.ledger_run(conn, context)
            except LookupError:
                raise AirflowSkipException("no ledger run: collect never started") from None
            summary = finalize_run(conn, run, self.backend(), self.workload)
        return summary.as_dict()


class TrialReportOperator(_NightshiftOperator):
    """Compare the candidate's answers with the current rows, store the report on the trial, log it."""

    def execute(self, context) -> dict[str, Any]:
        import io

        from rich.console import Console

        from nightshift.costs import price_table
        from nightshift.deployment import get_workload
        from nightshift.ledger import runs, trials
        from nightshift.migration.trial import report
        from nightshift.migration.trial_render import print_trial

        with self.db() as conn:
            try:
                run = self.ledger_run(conn, context)
            except LookupError:  # the DAG run must show red: no trial ran
                raise AirflowFailException("the trial never started: collect did not record a run") from None
            trial = trials.for_run(conn, run.run_pk)
            status = runs.outcome(conn, run.run_pk).status
            if not status.closed:
                trials.record_failure(conn, trial.trial_pk, f"run {run.run_pk} was not closed ({status}): "
                                                            "an upstream step failed")
                conn.commit()
                raise AirflowFailException(f"trial #{trial.trial_pk}: its run was not closed; no report")
            # the workload as its file declares it (ledger_run put this task's on the run's, the candidate)
            result = report(conn, get_workload(self.workload_name), trial, price_table())
        text = io.StringIO()
        print_trial(result, Console(file=text, width=120))
        self.log.info("%s", text.getvalue())
        return {k: result[k] for k in ("trial_pk", "keys_compared", "keys_agreeing", "agreement",
                                       "agreement_low", "agreement_high")}
