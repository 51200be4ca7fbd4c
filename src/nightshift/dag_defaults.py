"""What every nightly DAG of a workload shares, whichever path it runs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import CronDataIntervalTimetable

from nightshift.config import settings
from nightshift.workloads.definition import Workload
from nightshift.workloads.schedule import FROM_DEPLOYMENT


def workload_timetable(workload: Workload, *, backfill: bool = False) -> CronDataIntervalTimetable | None:
    """The workload's ``schedule`` in its ``timezone`` (each defaulting to the ``[nightshift]`` setting);
    None when it runs manually only. A backfill needs intervals: a manual-only workload's backfill
    DAG uses the deployment's schedule, in the workload's time zone."""
    cfg = settings()
    zone = cfg.timezone if workload.timezone == FROM_DEPLOYMENT else workload.timezone
    cron = cfg.schedule if workload.schedule == FROM_DEPLOYMENT else workload.schedule
    if cron is None and backfill:
        cron = cfg.schedule
    return None if cron is None else CronDataIntervalTimetable(cron, timezone=zone)


def nightly_dag_kwargs(workload: Workload, path: str, **overrides: Any) -> dict[str, Any]:
    """A real nightly data interval (a bare cron string gives zero-length intervals in Airflow 3),
    no catch-up, one run at a time, and retries (every step is idempotent). ``path`` ``backfill``
    covers the same intervals as the nightly DAGs."""
    return {
        "schedule": workload_timetable(workload, backfill=path == "backfill"),
        "start_date": datetime(2026, 1, 1),
        "catchup": False,
        "max_active_runs": 1,
        "tags": ["nightshift", path, workload.name],
        "default_args": {"retries": 2, "retry_delay": timedelta(minutes=2)},
        **overrides,
    }
