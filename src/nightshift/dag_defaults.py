"""What every nightly DAG of a workload shares, whichever path it runs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import CronDataIntervalTimetable

from nightshift.config import settings
from nightshift.workloads.definition import Workload


def nightly_dag_kwargs(workload: Workload, path: str, **overrides: Any) -> dict[str, Any]:
    """A real nightly data interval (a bare cron string gives zero-length intervals in Airflow 3),
    no catch-up, one run at a time, and retries (every step is idempotent)."""
    cfg = settings()
    return {
        "schedule": CronDataIntervalTimetable(cfg.schedule, timezone=cfg.timezone),
        "start_date": datetime(2026, 1, 1),
        "catchup": False,
        "max_active_runs": 1,
        "tags": ["nightshift", path, workload.name],
        "default_args": {"retries": 2, "retry_delay": timedelta(minutes=2)},
        **overrides,
    }
