"""Task bodies that need Airflow connections; kept out of DAG files so those parse fast."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def stream_requests_task(workload_name: str, *, run_id: str) -> dict:
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from nightshift.contract import ContractMismatch

    from nightshift import db
    from nightshift.config import settings
    from nightshift.hooks import batch_backend
    from nightshift.streaming import run_streaming
    from nightshift.deployment import get_workload

    cfg = settings()
    workload = get_workload(workload_name)
    with db.connect(cfg.db_conn_id) as conn:
        try:
            summary = run_streaming(conn, batch_backend(workload.backend, cfg.anthropic_conn_id), workload,
                                    claimer=f"stream:{workload.name}:{run_id}")
        except ContractMismatch as exc:  # the tables must change first: a retry would meet it again
            raise AirflowFailException(str(exc)) from None
    if summary.requests == 0:
        raise AirflowSkipException(f"no pending {workload.name} requests: nothing to do tonight")
    return summary.as_dict()
