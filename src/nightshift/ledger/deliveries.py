"""``nightshift.deliveries``: per destination row, what produced it and which request it came from.

Every landing records its row here in the transaction that writes the destination, whatever
columns the destination has: the model and prompt version a table has no column for, and the
queue order (``request_id``) that decides which of two results for one key a row keeps. A record
is replaced only by the result of a request at least as new; a row whose record was not replaced
is not written (see :func:`nightshift.destination.upsert_statement`).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

#: Newer-or-equal wins; a row or result with no queue request (interval mode) is ordered by landing.
_NEWER = sql.SQL("ON CONFLICT (destination, source_key) DO UPDATE SET workload = EXCLUDED.workload, "
                 "model = EXCLUDED.model, prompt_version = EXCLUDED.prompt_version, "
                 "request_id = EXCLUDED.request_id, landed_at = now() "
                 "WHERE dl.request_id IS NULL OR EXCLUDED.request_id IS NULL "
                 "OR dl.request_id <= EXCLUDED.request_id")


def record_from(incoming: sql.Identifier, key: str, model: str, prompt_version: str,
                request_id: str) -> sql.Composed:
    """An INSERT recording each row of the CTE ``incoming`` (columns named by the arguments) for the
    table ``%(ns_destination)s`` and workload ``%(ns_workload)s``; returns the keys (as text) it recorded."""
    return sql.SQL(
        "INSERT INTO nightshift.deliveries AS dl (destination, source_key, workload, model, prompt_version, "
        "request_id) SELECT %(ns_destination)s, i.{key}::text, %(ns_workload)s, i.{model}, i.{version}, "
        "i.{rid} "
        "FROM {incoming} i ORDER BY 2 {newer} RETURNING dl.source_key"
    ).format(incoming=incoming, newer=_NEWER, key=sql.Identifier(key), model=sql.Identifier(model),
             version=sql.Identifier(prompt_version), rid=sql.Identifier(request_id))


def record_one(conn: psycopg.Connection, *, destination: str, workload: str, key: Any, model: str,
               prompt_version: str, request_id: int | None) -> bool:
    """Record one row (the streaming path); False when a newer request's result is already recorded."""
    return conn.execute(sql.SQL(
        "INSERT INTO nightshift.deliveries AS dl (destination, source_key, workload, model, prompt_version, "
        "request_id) VALUES (%s, %s::text, %s, %s, %s, %s) {newer} RETURNING 1").format(newer=_NEWER),
        (destination, key, workload, model, prompt_version, request_id)).fetchone() is not None


def produced_by(key: sql.Composable) -> sql.Composed:
    """A LEFT JOIN of each row's record (alias ``dl``) for the destination ``%(destination)s``, by ``key``."""
    return sql.SQL(" LEFT JOIN nightshift.deliveries dl ON dl.destination = %(destination)s "
                   "AND dl.source_key = {}::text").format(key)

