"""DAGs for the streaming path: one per workload, built from its definition."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable, task

from nightshift.assets import destination_asset
from nightshift.config import settings
from nightshift.dag_ids import streaming_dag_id
from nightshift.workloads.definition import Workload


def streaming_dag(workload: Workload, *, fileloc: str | None = None) -> DAG:
    """``fileloc`` is the DAG file calling the factory: Airflow re-parses that file to run a task."""
    cfg = settings()
    with DAG(
        dag_id=streaming_dag_id(workload.name),
        description=f"Streaming path (one request at a time, full price): {workload.description}",
        schedule=CronDataIntervalTimetable(cfg.schedule, timezone=cfg.timezone),
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        tags=["nightshift", "streaming", workload.name],
        default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
        doc_md=__doc__,
    ) as dag:

        @task(task_id="stream_requests", outlets=[destination_asset(workload)])
        def stream_requests(workload_name: str, **context) -> dict:
            from nightshift.tasks import stream_requests_task

            return stream_requests_task(workload_name, run_id=context["run_id"])

        stream_requests(workload.name)
    if fileloc:
        dag.fileloc = fileloc
    return dag
