"""What the catalog says about a team's table: its columns and the unique keys an upsert can use.

Read-only queries on ``information_schema`` and ``pg_catalog``, for the contract check that runs
before a night spends anything (:mod:`nightshift.contract`).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # the base type's name as pg_type spells it: int8, text, varchar, jsonb, timestamptz…
    is_enum: bool
    max_length: int | None  # varchar(n) / char(n): n
    not_null: bool
    has_default: bool  # a default, an identity or a generated column: the database fills it


@dataclass(frozen=True)
class Table:
    name: str
    columns: dict[str, Column]
    unique_keys: list[tuple[str, ...]]  # the column sets of its primary key and unique constraints/indexes


def table(conn: psycopg.Connection, qualified: str) -> Table | None:
    """The table (or view) ``schema.name``, or None when the catalog has no such relation."""
    oid = conn.execute("SELECT to_regclass(%s)::oid", (qualified,)).fetchone()[0]
    if oid is None:
        return None
    rows = conn.execute(
        "SELECT a.attname, coalesce(bt.typname, t.typname), coalesce(bt.typtype, t.typtype) = 'e', "
        "       CASE WHEN coalesce(bt.typname, t.typname) IN ('varchar', 'bpchar') AND a.atttypmod > 4 "
        "            THEN a.atttypmod - 4 END, "
        "       a.attnotnull, a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '' "
        "  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "  LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype "
        " WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum", (oid,)).fetchall()
    keys = conn.execute(
        "SELECT array_agg(a.attname ORDER BY k.ord) FROM pg_index i "
        "  CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
        "  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        " WHERE i.indrelid = %s AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL "
        " GROUP BY i.indexrelid", (oid,)).fetchall()
    return Table(qualified, {r[0]: Column(*r) for r in rows}, [tuple(k[0]) for k in keys])
