"""Task bodies that need Airflow connections; kept out of DAG files so those parse fast."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def anthropic_client(conn_id: str):
    from airflow.providers.anthropic.hooks.anthropic import AnthropicHook

    return AnthropicHook(conn_id=conn_id).get_conn()


def stream_requests_task(workload_name: str, *, run_id: str) -> dict:
    from airflow.sdk.exceptions import AirflowSkipException

    from nightshift import db
    from nightshift.config import settings
    from nightshift.streaming import run_streaming
    from nightshift.workloads import get_workload

    cfg = settings()
    workload = get_workload(workload_name)
    with db.connect(cfg.db_conn_id) as conn:
        summary = run_streaming(
            conn, anthropic_client(cfg.anthropic_conn_id), workload, claimer=f"stream:{workload.name}:{run_id}"
        )
    if summary.requests == 0:
        raise AirflowSkipException(f"no pending {workload.name} requests: nothing to do tonight")
    return summary.as_dict()
