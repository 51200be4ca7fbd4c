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
    from nightshift.ledger.schema import SchemaOutOfDate, require_current
    from nightshift.routing import SwitchedModelUnfit, model_in_force

    cfg = settings()
    workload = get_workload(workload_name)
    backend = batch_backend(workload.backend, cfg.anthropic_conn_id)
    try:
        with db.connect(cfg.db_conn_id) as conn:
            try:
                require_current(conn)
                workload = model_in_force(conn, workload)
                summary = run_streaming(conn, backend, workload, claimer=f"stream:{workload.name}:{run_id}")
            except (SchemaOutOfDate, ContractMismatch, SwitchedModelUnfit) as exc:  # fix the ledger, tables or file first
                raise AirflowFailException(str(exc)) from None
    except Exception as exc:
        _fail_if_permanent(exc, backend, cfg)
        raise
    if summary.requests == 0:
        raise AirflowSkipException(f"no pending {workload.name} requests: nothing to do tonight")
    return summary.as_dict()


def _fail_if_permanent(exc: BaseException, backend, cfg) -> None:
    """Fail the task for good (no task retries) on what retrying cannot fix: a refused key or API URL
    (run_streaming has handed the claimed requests back), or a database that refuses the connection."""
    from airflow.sdk.exceptions import AirflowFailException

    from nightshift import db
    from nightshift.batch.permanent import classify

    try:
        dsn = db.dsn(cfg.db_conn_id)
    except Exception:
        dsn = None
    final = classify(exc, backend=backend, reached=False, dsn=dsn, db_conn_id=cfg.db_conn_id,
                     api_conn_id=cfg.anthropic_conn_id)
    if final is not None:
        raise AirflowFailException(str(final)) from exc
