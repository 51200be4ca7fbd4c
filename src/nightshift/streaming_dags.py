"""DAGs for the streaming path: one per workload, built from its definition."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, task

from nightshift.assets import destination_asset
from nightshift.dag_defaults import nightly_dag_kwargs
from nightshift.dag_ids import streaming_dag_id
from nightshift.workloads.definition import Workload


def streaming_dag(workload: Workload, *, fileloc: str | None = None) -> DAG:
    """``fileloc`` is the DAG file calling the factory: Airflow re-parses that file to run a task."""
    with DAG(
        dag_id=streaming_dag_id(workload.name),
        description=f"Streaming path (one request at a time, full price): {workload.description}",
        doc_md=__doc__,
        **nightly_dag_kwargs(workload, "streaming", default_args={"retries": 2, "retry_delay": timedelta(minutes=1)}),
    ) as dag:

        @task(task_id="stream_requests", outlets=[destination_asset(workload)])
        def stream_requests(workload_name: str, **context) -> dict:
            from nightshift.tasks import stream_requests_task

            return stream_requests_task(workload_name, run_id=context["run_id"])

        stream_requests(workload.name)
    if fileloc:
        dag.fileloc = fileloc
    return dag
