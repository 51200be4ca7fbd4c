"""The destination-table contract: which columns a result fills, and the upsert that writes them.

Both delivery paths build rows with :func:`destination_row` and write them with
:func:`upsert_statement`, so a row cannot differ by path except in its delivery metadata
(``request_id`` and the written-at timestamp).
"""

from __future__ import annotations

from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from nightshift.workloads.definition import Workload

METADATA_COLUMNS = ("model", "prompt_version", "request_id")


def destination_columns(workload: Workload) -> list[str]:
    return [workload.destination.key, *workload.destination.columns, *METADATA_COLUMNS]


def destination_row(
    workload: Workload, source_key: Any, output: dict[str, Any], *, model: str, request_id: int | None
) -> tuple[Any, ...]:
    """One destination row, in :func:`destination_columns` order, from a validated output."""
    values = [source_key]
    for field in workload.destination.columns.values():
        value = output[field]
        values.append(Jsonb(value) if isinstance(value, (dict, list)) else value)
    return (*values, model, workload.prompt_version, request_id)


def _table(qualified: str) -> sql.Composable:
    schema, table = qualified.split(".")
    return sql.Identifier(schema, table)


def upsert_statement(workload: Workload, select: sql.Composable | None = None, table: str | None = None) -> sql.Composed:
    """``INSERT … ON CONFLICT (key) DO UPDATE`` from VALUES placeholders, or from ``select``
    (which must yield :func:`destination_columns` in order).

    A conflicting row is overwritten by the result of the newest request for its key, in queue
    order (``request_id``, which the queue hands out in order): results and retry rounds land in
    any order, so a result of an older request never replaces that of a newer one. A row or
    result with no queue request (interval mode) is ordered by landing, as before.
    """
    columns = destination_columns(workload)
    key = workload.destination.key
    updates = [
        sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in columns if c != key
    ]
    updates.append(sql.SQL("{} = now()").format(sql.Identifier(workload.destination.written_at_column)))
    source = select or sql.SQL("VALUES ({})").format(sql.SQL(", ").join(sql.Placeholder() * len(columns)))
    target = _table(table or workload.destination.table)
    return sql.SQL(
        "INSERT INTO {table} AS t ({columns}) {source} ON CONFLICT ({key}) DO UPDATE SET {updates} "
        "WHERE t.request_id IS NULL OR EXCLUDED.request_id IS NULL OR t.request_id <= EXCLUDED.request_id"
    ).format(
        table=target,
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        source=source,
        key=sql.Identifier(key),
        updates=sql.SQL(", ").join(updates),
    )
