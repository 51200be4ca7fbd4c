"""The destination-table contract: which columns a result fills, and the upsert that writes them.

Both delivery paths write a result with the same statement shape (:func:`write_row` on the
streaming path, :func:`upsert_ctes` for a slice of batch results), so a row cannot differ by path
except in its delivery metadata (``request_id`` and the written-at timestamp). The metadata goes
to the columns ``destination.delivery`` maps (any of them may have none) and, always, to the
ledger's ``nightshift.deliveries``, which also orders results: a row keeps the result of the
newest request for its key, in queue order, whether or not the table has a ``request_id`` column.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from nightshift.ledger import deliveries
from nightshift.workloads.definition import Workload

#: Delivery metadata a row carries besides its values, in :func:`destination_row` order.
METADATA = ("model", "prompt_version", "request_id")


def destination_columns(workload: Workload) -> list[str]:
    """The columns a row fills from :func:`destination_row` (the written-at column is set to ``now()``)."""
    mapped = workload.destination.delivery.mapped()
    dest = workload.destination
    return [dest.key, *dest.columns, *dest.source_columns, *(mapped[m] for m in METADATA if m in mapped)]


def destination_row(
    workload: Workload, source_key: Any, output: dict[str, Any], *, model: str, request_id: int | None,
    source_row: dict[str, Any] | None = None,
) -> tuple[Any, ...]:
    """One row as every path builds it: the key, the mapped output values, the copied source values
    (from ``source_row``, the source row by column), model, prompt version, request."""
    values = [source_key]
    for field in workload.destination.columns.values():
        value = output[field]
        values.append(Jsonb(value) if isinstance(value, (dict, list)) else value)
    for source_column in workload.destination.source_columns.values():
        value = (source_row or {})[source_column]
        values.append(Jsonb(value) if isinstance(value, (dict, list)) else value)
    return (*values, model, workload.prompt_version, request_id)


def _table(qualified: str) -> sql.Composable:
    schema, table = qualified.split(".")
    return sql.Identifier(schema, table)


def _on_conflict(workload: Workload, filled: list[str]) -> sql.Composed:
    """``ON CONFLICT (key) DO UPDATE``; with a request_id column, the newest request wins here too
    (rows written before the ledger kept deliveries have no record to order them by)."""
    key = workload.destination.key
    delivery = workload.destination.delivery
    updates = [sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
               for c in filled if c != key]
    guard = sql.SQL("")
    if delivery.request_id:
        guard = sql.SQL(" WHERE t.{r} IS NULL OR EXCLUDED.{r} IS NULL OR t.{r} <= EXCLUDED.{r}").format(
            r=sql.Identifier(delivery.request_id))
    return sql.SQL("ON CONFLICT ({key}) DO UPDATE SET {updates}{guard}").format(
        key=sql.Identifier(key), updates=sql.SQL(", ").join(updates), guard=guard)


def _filled(workload: Workload) -> list[str]:
    written_at = workload.destination.delivery.written_at
    return [*destination_columns(workload), *([written_at] if written_at else [])]


def upsert_statement(workload: Workload, table: str | None = None) -> sql.Composed:
    """``INSERT … VALUES … ON CONFLICT (key) DO UPDATE`` of one row: :func:`destination_row`'s values
    for the mapped columns (see :func:`write_row`, which records the row's delivery first)."""
    filled = _filled(workload)
    values = [sql.Placeholder()] * len(destination_columns(workload))
    if workload.destination.delivery.written_at:
        values.append(sql.SQL("now()"))
    return sql.SQL("INSERT INTO {table} AS t ({columns}) VALUES ({values}) {conflict}").format(
        table=_table(table or workload.destination.table),
        columns=sql.SQL(", ").join(map(sql.Identifier, filled)), values=sql.SQL(", ").join(values), conflict=_on_conflict(workload, filled))


def write_row(conn: psycopg.Connection, workload: Workload, upsert: sql.Composed, row: tuple[Any, ...],
              table: str | None = None) -> bool:
    """Record one :func:`destination_row`'s delivery and write it with ``upsert`` (from
    :func:`upsert_statement`), in the caller's transaction; False (nothing written) when the
    result of a newer request for the key has already landed."""
    key, *values, model, version, request_id = row
    if not deliveries.record_one(conn, destination=table or workload.destination.table,
                                 workload=workload.name, key=key, model=model, prompt_version=version, request_id=request_id):
        return False
    mapped = workload.destination.delivery.mapped()
    metadata = [value for name, value in zip(METADATA, (model, version, request_id)) if name in mapped]
    conn.execute(upsert, (key, *values, *metadata))
    return True


def upsert_ctes(workload: Workload, select: sql.Composable, table: str | None = None) -> list[sql.Composed]:
    """The common table expressions that write the rows ``select`` yields (in :func:`destination_row`
    order, source values included, ordered by key) to the destination (or ``table``): ``incoming``,
    ``delivered`` (their
    records in the ledger, for the keys whose newest result they are) and ``destination``.

    Run with the parameters ``ns_destination`` (the table written) and ``ns_workload``.
    """
    delivery = workload.destination.delivery
    dest = workload.destination
    values = [f"v{i}" for i in range(len(dest.columns) + len(dest.source_columns))]
    names = ["ns_key", *values, "ns_model", "ns_prompt_version", "ns_request_id"]
    incoming = sql.SQL("incoming ({}) AS ({})").format(sql.SQL(", ").join(map(sql.Identifier, names)), select)
    delivered = sql.SQL("delivered AS ({})").format(deliveries.record_from(
        sql.Identifier("incoming"), "ns_key", "ns_model", "ns_prompt_version", "ns_request_id"))
    mapped = delivery.mapped()
    taken = ["ns_key", *values, *(f"ns_{m}" for m in METADATA if m in mapped)]
    picked = [sql.SQL("i.{}").format(sql.Identifier(c)) for c in taken]
    if delivery.written_at:
        picked.append(sql.SQL("now()"))
    filled = _filled(workload)
    destination = sql.SQL(
        "destination AS (INSERT INTO {table} AS t ({columns}) SELECT {picked} FROM incoming i "
        "JOIN delivered d ON d.source_key = i.ns_key::text ORDER BY i.ns_key {conflict})").format(
        table=_table(table or workload.destination.table),
        columns=sql.SQL(", ").join(map(sql.Identifier, filled)), picked=sql.SQL(", ").join(picked), conflict=_on_conflict(workload, filled))
    return [incoming, delivered, destination]
