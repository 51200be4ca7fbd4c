"""A workload's delivery mode: ``shadow`` (batch writes a shadow table) or ``batch`` (live).

The mode lives in the ledger, not in the workload file, because switching it is an act with
evidence (a parity report) that should be recorded, and because tasks read it at run time.
A workload with no recorded mode is ``batch``, what its DAG was built for.
"""

from __future__ import annotations

from typing import Any

import psycopg

from nightshift.ledger import migration
from nightshift.ledger.migration import ensure_shadow_table, shadow_table  # noqa: F401 (callers import them here)
from nightshift.ledger.status import DeliveryMode
from nightshift.workloads.definition import Workload

MODES = tuple(m.value for m in DeliveryMode)


def get_mode(conn: psycopg.Connection, workload: Workload) -> DeliveryMode:
    return migration.recorded_mode(conn, workload.name) or DeliveryMode.BATCH


def set_mode(conn: psycopg.Connection, workload: Workload, mode: DeliveryMode, *, agreement: float | None = None,
             report: dict[str, Any] | None = None) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    migration.record_mode(conn, workload.name, mode, agreement=agreement, report=report)
    if mode == DeliveryMode.SHADOW:
        ensure_shadow_table(conn, workload)
    conn.commit()
