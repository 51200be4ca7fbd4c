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


def settings() -> Settings:
    env = os.environ.get
    return Settings(
        db_conn_id=env("NIGHTSHIFT_DB_CONN_ID", "nightshift_db"),
        anthropic_conn_id=env("NIGHTSHIFT_ANTHROPIC_CONN_ID", "anthropic_default"),
        schedule=env("NIGHTSHIFT_SCHEDULE", "0 2 * * *"),
        timezone=env("NIGHTSHIFT_TIMEZONE", "UTC"),
    )
