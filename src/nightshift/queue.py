"""The request queue's keys against the source table: their type, a cast that never raises, the rows.

Claiming and closing requests is the ledger's (:mod:`nightshift.ledger.queue`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from nightshift.ledger import queue as requests
from nightshift.ledger.queue import claim, mark_done, mark_failed, release  # noqa: F401 (their old home)
from nightshift.workloads.definition import Workload


def _column_type(conn: psycopg.Connection, table: str, column: str) -> tuple[str, str, int, str]:
    """``(schema, name, oid, display name)`` of a column's type."""
    row = conn.execute(
        "SELECT n.nspname, t.typname, t.oid::int, format_type(t.oid, NULL) FROM pg_attribute a "
        "JOIN pg_type t ON t.oid = a.atttypid JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE a.attrelid = %s::regclass AND a.attname = %s AND NOT a.attisdropped",
        (table, column),
    ).fetchone()
    if row is None:
        raise LookupError(f"{table} has no column {column!r}")
    return row


def column_type(conn: psycopg.Connection, table: str, column: str) -> sql.Identifier:
    """The type of a column, for casting the queue's text keys back to it.

    Returned as the type's schema-qualified name (``"pg_catalog"."int8"``), quoted like any
    identifier, so no text read from the catalog is ever spliced into a statement. A type
    modifier (``varchar(40)``) is left out: a cast of a key to its base type compares the same.
    """
    schema, name, _, _ = _column_type(conn, table, column)
    return sql.Identifier(schema, name)


def source_key_type(conn: psycopg.Connection, workload: Workload) -> sql.Identifier:
    return column_type(conn, workload.source.table, workload.source.key)


# Keys these patterns match always cast (an int8 of up to 18 digits cannot overflow); the rest
# are settled by nightshift.is_valid_input, which tries the cast and catches the error.
_ALWAYS_VALID = {"text", "varchar", "bpchar", "name", "citext"}
_CASTS_CLEANLY = {
    "int2": r"^-?[0-9]{1,4}$",
    "int4": r"^-?[0-9]{1,9}$",
    "int8": r"^-?[0-9]{1,18}$",
    "uuid": r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
}


@dataclass(frozen=True)
class KeyCast:
    """How a queue key (text) becomes the source key's type without ever raising.

    ``valid(v)`` is a boolean SQL expression; ``cast(v)`` is the key as its type, or NULL when it
    is not a valid value of it (a queue row saying ``ticket_id = 'abc'`` matches no source row
    and fails alone, instead of failing the statement that reads the whole night).
    """

    type: sql.Identifier
    type_name: str
    oid: int
    base: str

    def valid(self, value: sql.Composable) -> sql.Composable:
        if self.base in _ALWAYS_VALID:
            return sql.SQL("true")
        pattern = _CASTS_CLEANLY.get(self.base, "^$.")  # a pattern nothing matches: always ask the function
        return requests.is_valid_input(value, pattern, self.oid)

    def cast(self, value: sql.Composable) -> sql.Composable:
        if self.base in _ALWAYS_VALID:
            return sql.SQL("{}::{}").format(value, self.type)
        return sql.SQL("CASE WHEN {valid} THEN {v}::{type} END").format(valid=self.valid(value), v=value,
                                                                         type=self.type)


def source_key_cast(conn: psycopg.Connection, workload: Workload) -> KeyCast:
    schema, name, oid, display = _column_type(conn, workload.source.table, workload.source.key)
    return KeyCast(sql.Identifier(schema, name), display, oid, name)


def fetch_source_rows(
    conn: psycopg.Connection, workload: Workload, source_keys: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Source rows by their key rendered as text (the queue's ``source_key``); a key that is not a
    valid value of the source key's type finds no row."""
    columns = [workload.source.key, *workload.source.columns]
    schema, table = workload.source.table.split(".")
    query = sql.SQL("SELECT {columns} FROM {table} WHERE {key} = ANY(ARRAY(SELECT {cast} FROM unnest(%s::text[]) k))"
                    ).format(
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        table=sql.Identifier(schema, table),
        key=sql.Identifier(workload.source.key),
        cast=source_key_cast(conn, workload).cast(sql.SQL("k")),
    )
    with conn.cursor() as cur:
        cur.execute(query, (list(source_keys),))
        return {str(row[0]): dict(zip(columns, row, strict=True)) for row in cur}
