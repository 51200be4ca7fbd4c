"""A workload's delivery mode: ``shadow`` (batch writes a shadow table) or ``batch`` (live).

The mode lives in the ledger, not in the workload file, because switching it is an act with
evidence (a parity report) that should be recorded, and because tasks read it at run time.
A workload with no recorded mode is ``batch``, what its DAG was built for.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from nightshift.workloads.definition import Workload

MODES = ("shadow", "batch")


def get_mode(conn: psycopg.Connection, workload: Workload) -> str:
    row = conn.execute("SELECT mode FROM nightshift.workload_modes WHERE workload = %s", (workload.name,)).fetchone()
    return row[0] if row else "batch"


def set_mode(conn: psycopg.Connection, workload: Workload, mode: str, *, agreement: float | None = None,
             report: dict[str, Any] | None = None) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    conn.execute(
        "INSERT INTO nightshift.workload_modes (workload, mode, agreement, report) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (workload) DO UPDATE SET mode = EXCLUDED.mode, agreement = EXCLUDED.agreement, "
        "report = EXCLUDED.report, changed_at = now(), changed_by = current_user",
        (workload.name, mode, agreement, Jsonb(report) if report is not None else None))
    if mode == "shadow":
        ensure_shadow_table(conn, workload)
    conn.commit()


def shadow_table(workload: Workload) -> str:
    return f"nightshift.shadow_{workload.name}"


def ensure_shadow_table(conn: psycopg.Connection, workload: Workload) -> None:
    """The destination's twin: same columns, key and checks, none of its foreign keys."""
    schema, table = workload.destination.table.split(".")
    conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
                         "INCLUDING INDEXES)").format(sql.Identifier("nightshift", f"shadow_{workload.name}"),
                                                      sql.Identifier(schema, table)))
