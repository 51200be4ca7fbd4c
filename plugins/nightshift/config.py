"""Deployment settings, read from the environment with sensible defaults.

Everything here is cheap to read at DAG-parse time: no DB, no network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    db_conn_id: str
    anthropic_conn_id: str
    schedule: str
    timezone: str
    # Account limits, per tier (the defaults suit the lowest tier, with headroom): calls to the
    # batch endpoints per window (a minute) for all runs together, the share of them that
    # waiting runs aim to spend polling, and requests allowed in the processing queue.
    batch_api_rpm: int
    batch_api_window_seconds: float
    poll_budget_rpm: float
    max_queued_requests: int


def settings() -> Settings:
    env = os.environ.get
    return Settings(
        db_conn_id=env("NIGHTSHIFT_DB_CONN_ID", "nightshift_db"),
        anthropic_conn_id=env("NIGHTSHIFT_ANTHROPIC_CONN_ID", "anthropic_default"),
        schedule=env("NIGHTSHIFT_SCHEDULE", "0 2 * * *"),
        timezone=env("NIGHTSHIFT_TIMEZONE", "UTC"),
        batch_api_rpm=int(env("NIGHTSHIFT_BATCH_API_RPM", "45")),
        batch_api_window_seconds=float(env("NIGHTSHIFT_BATCH_API_WINDOW_SECONDS", "60")),
        poll_budget_rpm=float(env("NIGHTSHIFT_POLL_BUDGET_RPM", "30")),
        max_queued_requests=int(env("NIGHTSHIFT_MAX_QUEUED_REQUESTS", "90000")),
    )
