"""The demo's application database: the app tables as a team's streaming path left them, then
the ledger at its newest version (what `nightshift db upgrade` does in a deployment)."""

from __future__ import annotations

import psycopg

from nightshift.ledger import schema
from nightshift.paths import include_dir


def apply_schema(conn: psycopg.Connection) -> list[str]:
    """Create the demo's app tables (idempotent), then upgrade the ledger; names what ran."""
    app_schema = include_dir() / "sql" / "001_app_schema.sql"
    conn.execute(app_schema.read_text(encoding="utf-8"))
    conn.commit()
    return [app_schema.name] + [f"{m.version:03d}_{m.name}" for m in schema.upgrade(conn)]
