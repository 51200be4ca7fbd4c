"""The model trial DAG of a workload: collect (the sample) → submit → wait → land → retry rounds →
finalize → report, triggered by hand with the trial's params, so a trial runs from the UI.

It is the batch DAG's shape on the candidate model (``Workload.with_model``): the same submit and
deferrable wait, landing into ``nightshift.trial_<workload>``; ``nightshift trial`` runs the same
core functions from the command line. No schedule, no Asset: a trial writes no destination.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, TaskGroup, TriggerRule

from nightshift.batch_dags import PARAMS, _no_group
from nightshift.dag_ids import trial_dag_id
from nightshift.sensors import BatchesEndedSensor
from nightshift.trial_operators import (
    TrialCollectOperator,
    TrialFinalizeOperator,
    TrialLandOperator,
    TrialReportOperator,
    TrialSubmitOperator,
)
from nightshift.workloads.definition import Workload

TRIAL_PARAMS = {
    "candidate": Param(None, type=["null", "string"], description="The model to try (a model id)."),
    "sample": Param(2_000, type="integer", minimum=1,
                    description="Keys to sample (2,000: a 95% interval of at most about ±2.2 points)."),
    "from": Param(None, type=["null", "string"], format="date",
                  description="Only source rows whose source.timestamp_column is on or after this day "
                              "(UTC)."),
    "to": Param(None, type=["null", "string"], format="date",
                description="Only source rows whose source.timestamp_column is on or before this day (UTC)."),
    "seed": Param(None, type=["null", "integer"],
                  description="The sample's seed (default: drawn and recorded)."),
    **{name: PARAMS[name] for name in ("max_requests_per_batch", "max_batch_bytes", "poll_interval_seconds")},
}


def trial_dag(workload: Workload, *, fileloc: str | None = None, deferrable: bool = True) -> DAG:
    with DAG(dag_id=trial_dag_id(workload.name), description=f"Model trial: {workload.description}",
             doc_md=__doc__, schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
             params=TRIAL_PARAMS, max_active_runs=1,  # trials of a workload share its trial table
             tags=["nightshift", "trial", workload.name],
             default_args={"retries": 2, "retry_delay": timedelta(minutes=2)}) as dag:
        common = {"workload": workload.name}
        previous = TrialCollectOperator(task_id="collect", **common)
        for round_ in range(workload.batch.retry_rounds + 1):
            with TaskGroup(f"retry_{round_}") if round_ else _no_group():
                submit = TrialSubmitOperator(task_id="submit", round=round_, **common)
                wait = BatchesEndedSensor(task_id="wait", round=round_, deferrable=deferrable, **common)
                land = TrialLandOperator(task_id="land", round=round_, **common)
                previous >> submit >> wait >> land
            previous = land
        finalize = TrialFinalizeOperator(task_id="finalize", trigger_rule=TriggerRule.ALL_DONE, **common)
        report = TrialReportOperator(task_id="report", trigger_rule=TriggerRule.ALL_DONE, retries=0, **common)
        previous >> finalize >> report
    if fileloc:
        dag.fileloc = fileloc
    return dag
