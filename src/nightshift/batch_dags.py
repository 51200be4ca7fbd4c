"""The nightly batch DAG of a workload: collect → submit → wait → land → retry rounds → finalize → verdict.

Retry rounds are tasks of their own (``retry_1.submit`` …), so the grid shows each round, and
a round with nothing to retry skips cleanly. ``finalize`` runs whatever happened upstream,
closes every request in a terminal state and publishes the destination Asset — the same
Asset the streaming path publishes, so downstream DAGs cannot tell the paths apart.
``verdict`` turns the ledger's verdict into the DAG run's state.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param, TaskGroup, TriggerRule

from nightshift.assets import destination_asset
from nightshift.dag_defaults import nightly_dag_kwargs
from nightshift.dag_ids import backfill_dag_id, batch_dag_id
from nightshift.operators import (
    CollectRequestsOperator,
    DefinitionErrorOperator,
    FinalizeRunOperator,
    LandResultsOperator,
    NightVerdictOperator,
    SubmitBatchesOperator,
)
from nightshift.sensors import BatchesEndedSensor
from nightshift.workloads.definition import Workload

PARAMS = {
    "max_requests": Param(None, type=["null", "integer"], minimum=1,
                          description="Claim at most this many pending requests (default: all)."),
    "max_requests_per_batch": Param(None, type=["null", "integer"], minimum=1, maximum=100_000,
                                    description="Lower the per-batch request cap (API limit 100,000)."),
    "max_batch_bytes": Param(None, type=["null", "integer"], minimum=1_000, maximum=256_000_000,
                             description="Lower the per-batch body cap (API limit 256 MB)."),
    "poll_interval_seconds": Param(None, type=["null", "number"], exclusiveMinimum=0,
                                   description="Seconds between polls while waiting (default: the workload's)."),
    "deadline_seconds": Param(None, type=["null", "number"], exclusiveMinimum=0,
                              description="Cancel unfinished batches this long after collect (default: the workload's)."),
}


BACKFILL_PARAMS = {
    **PARAMS,
    "reprocess": Param(False, type="boolean",
                       description="Redo rows already at the current prompt version (default: skip them)."),
}


def batch_dag(workload: Workload, *, fileloc: str | None = None, deferrable: bool = True) -> DAG:
    """The nightly DAG: the queue's pending requests. ``fileloc`` is the DAG file calling the
    factory: Airflow re-parses that file to run a task."""
    return _batch_pipeline(workload, "queue", fileloc, deferrable, dag_id=batch_dag_id(workload.name),
                           description=f"Batch path (Message Batches API): {workload.description}",
                           params=PARAMS, **nightly_dag_kwargs(workload, "batch"))


def backfill_dag(workload: Workload, *, fileloc: str | None = None, deferrable: bool = True) -> DAG:
    """The backfill DAG: the source rows of each data interval, for ``airflow backfill create``.

    Paused at creation and never scheduled on its own; runs are independent and idempotent per
    interval, so ``max_active_runs`` (``[nightshift] backfill_max_active_runs``, default 4) of them
    can run at once.
    """
    from nightshift.config import settings

    return _batch_pipeline(
        workload, "interval", fileloc, deferrable, dag_id=backfill_dag_id(workload.name),
        description=f"Backfill (interval mode): {workload.description}", params=BACKFILL_PARAMS,
        **nightly_dag_kwargs(workload, "backfill", is_paused_upon_creation=True,
                             max_active_runs=settings().backfill_max_active_runs))


def broken_workload_dag(name: str, error: Exception, *, fileloc: str | None = None) -> DAG:
    """The nightly DAG of a workload whose definition does not load: one task that fails, naming
    the file and the field. The other workloads' DAGs load and run; this one says why it cannot.
    ``name`` is the file's (any character a DAG id cannot hold becomes ``_``)."""
    import re
    from datetime import datetime, timedelta

    from airflow.sdk import CronDataIntervalTimetable

    from nightshift.config import settings

    cfg = settings()
    dag_id = batch_dag_id(re.sub(r"[^A-Za-z0-9_.-]", "_", name))
    with DAG(dag_id=dag_id, description=f"Broken workload definition: {error}"[:500],
             schedule=CronDataIntervalTimetable(cfg.schedule, timezone=cfg.timezone), start_date=datetime(2026, 1, 1),
             catchup=False, max_active_runs=1, tags=["nightshift", "batch", name, "broken"],
             default_args={"retries": 0, "retry_delay": timedelta(minutes=2)}) as dag:
        DefinitionErrorOperator(task_id="definition_error", workload=name, error=str(error))
    if fileloc:
        dag.fileloc = fileloc
    return dag


def _batch_pipeline(workload: Workload, source: str, fileloc: str | None, deferrable: bool, **dag_kwargs) -> DAG:
    rounds = workload.batch.retry_rounds
    with DAG(doc_md=__doc__, **dag_kwargs) as dag:
        common = {"workload": workload.name}
        collect = CollectRequestsOperator(task_id="collect", source=source, **common)
        previous = collect
        for round_ in range(rounds + 1):
            group = TaskGroup(f"retry_{round_}") if round_ else None
            with group or _no_group():
                submit = SubmitBatchesOperator(task_id="submit", round=round_, **common)
                wait = BatchesEndedSensor(task_id="wait", round=round_, deferrable=deferrable, **common)
                land = LandResultsOperator(task_id="land", round=round_, **common)
                previous >> submit >> wait >> land
            previous = land
        finalize = FinalizeRunOperator(task_id="finalize", trigger_rule=TriggerRule.ALL_DONE,
                                       outlets=[destination_asset(workload)], **common)
        verdict = NightVerdictOperator(task_id="verdict", trigger_rule=TriggerRule.ALL_DONE, retries=0, **common)
        previous >> finalize >> verdict
    if fileloc:
        dag.fileloc = fileloc
    return dag


class _no_group:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
