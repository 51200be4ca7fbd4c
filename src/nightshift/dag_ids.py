"""DAG ids, in one place, so the demo, the UI and the tests agree with the factories."""

from __future__ import annotations

from nightshift.deployment import all_workloads


def streaming_dag_id(workload_name: str) -> str:
    return f"nightshift_stream_{workload_name}"


def batch_dag_id(workload_name: str) -> str:
    return f"nightshift_batch_{workload_name}"


def backfill_dag_id(workload_name: str) -> str:
    return f"nightshift_backfill_{workload_name}"


def trial_dag_id(workload_name: str) -> str:
    return f"nightshift_trial_{workload_name}"


def night_dag_ids() -> list[str]:
    """The DAGs that make up one night: the batch path of every workload."""
    return [batch_dag_id(name) for name in all_workloads()]
