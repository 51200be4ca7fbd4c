"""The destination contract, checked against the catalog before a night spends anything.

A workload names a source table and a destination table it does not own. Before any API call the
source's key and columns, and the destination's key (with the unique constraint the upsert's
``ON CONFLICT`` needs) and every column the workload fills are looked up: each must exist with a
type that can hold what is written into it, and no ``NOT NULL`` column without a default may be
left unfilled. Every mismatch is reported at once, each naming the table, the column and the fix.
"""

from __future__ import annotations

from typing import Any

import psycopg

from nightshift.ledger import catalog
from nightshift.ledger.catalog import Column, Table
from nightshift.workloads.definition import Workload

TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "citext", "name"})
INTEGER_TYPES = frozenset({"int2", "int4", "int8", "numeric"})
NUMBER_TYPES = frozenset({"numeric", "float4", "float8"})
JSON_TYPES = frozenset({"json", "jsonb"})
#: The types a JSON Schema type can be written to (an integer also fits a floating-point column).
COMPATIBLE = {
    "string": TEXT_TYPES,
    "integer": INTEGER_TYPES | {"float4", "float8"},
    "number": NUMBER_TYPES,
    "boolean": frozenset({"bool"}),
    "object": JSON_TYPES,
    "array": JSON_TYPES,
}
#: What each kind of delivery metadata is, and the column types that hold it.
METADATA_TYPES = {
    "model": ("text", TEXT_TYPES),
    "prompt_version": ("text", TEXT_TYPES),
    "request_id": ("bigint", frozenset({"int8", "numeric"})),
    "written_at": ("timestamptz", frozenset({"timestamptz", "timestamp"})),
}


class ContractMismatch(ValueError):
    """The tables do not match the workload; the message lists every mismatch and its fix."""

    def __init__(self, workload: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"workload {workload!r}: its tables do not match its definition "
                         "(nothing was submitted):\n"
                         + "\n".join(f"- {p}" for p in problems))


def check_contract(conn: psycopg.Connection, workload: Workload) -> None:
    """Raise :class:`ContractMismatch` unless the source and destination tables fit ``workload``."""
    problems = contract_problems(workload, catalog.table(conn, workload.source.table),
                                 catalog.table(conn, workload.destination.table))
    if problems:
        raise ContractMismatch(workload.name, problems)


def contract_problems(workload: Workload, source: Table | None, destination: Table | None) -> list[str]:
    return [*_source_problems(workload, source), *_destination_problems(workload, destination, source)]


def _source_problems(workload: Workload, table: Table | None) -> list[str]:
    src = workload.source
    if table is None:
        return [f"source {src.table}: the table does not exist — create it, or correct source.table"]
    named = [("source.key", src.key), *(("source.columns", c) for c in src.columns)]
    if src.timestamp_column:
        named.append(("source.timestamp_column", src.timestamp_column))
    return [f"source {src.table}: column \"{column}\" does not exist — add it, or correct {field}"
            for field, column in named if column not in table.columns]


def _destination_problems(workload: Workload, table: Table | None, source: Table | None = None) -> list[str]:
    dest = workload.destination
    where = f"destination {dest.table}"
    if table is None:
        return [f"{where}: the table does not exist — create it, or correct destination.table"]
    problems = []
    if dest.key not in table.columns:
        problems.append(f"{where}: key column \"{dest.key}\" does not exist — add it, "
                        "or correct destination.key")
    elif (dest.key,) not in table.unique_keys:
        problems.append(f"{where}: key column \"{dest.key}\" has no primary key or unique constraint of its "
                        f"own, which the upsert's ON CONFLICT needs — ALTER TABLE {dest.table} ADD UNIQUE ({dest.key})")
    filled = {dest.key}
    for column, field in dest.columns.items():
        filled.add(column)
        expected, allowed, length_problem = _output_field_type(workload, field, table.columns.get(column))
        problems += _column_problems(where, table, column, expected, allowed, f"destination.columns.{column}",
                                     f"or map another column to {field!r} in destination.columns")
        if length_problem and column in table.columns:
            problems.append(f"{where}: column \"{column}\" {length_problem}")
    for column, source_column in dest.source_columns.items():
        filled.add(column)
        found = source.columns.get(source_column) if source is not None else None
        if found is None:
            continue  # the source's own check names it
        problems += _column_problems(where, table, column, found.type, source_column_types(found),
                                     f"source_columns.{column}",
                                     "or copy another column in destination.source_columns")
    for what, column in dest.delivery.mapped().items():
        filled.add(column)
        expected, allowed = METADATA_TYPES[what]
        problems += _column_problems(where, table, column, expected, allowed, f"delivery_columns.{what}",
                                     f"or map {what} to null in destination.delivery_columns")
    for column in table.columns.values():
        if column.not_null and not column.has_default and column.name not in filled:
            problems.append(f"{where}: column \"{column.name}\" is NOT NULL with no default and nothing "
                            f"fills it — give it a default (ALTER TABLE {dest.table} ALTER COLUMN {column.name} "
                            "SET DEFAULT …), drop NOT NULL, or map it in destination.columns")
    return problems


def _column_problems(where: str, table: Table, column: str, expected: str, allowed: frozenset[str],
                     field: str, alternative: str) -> list[str]:
    found = table.columns.get(column)
    if found is None:
        return [f"{where}: column \"{column}\" does not exist — add it "
                f"(ALTER TABLE {table.name} ADD COLUMN {column} {expected}) {alternative}"]
    if found.type not in allowed and not (found.is_enum and "text" in allowed):
        return [f"{where}: column \"{column}\" is {found.type}, which cannot hold {field}'s value "
                f"({expected}) — ALTER TABLE {table.name} ALTER COLUMN {column} TYPE {expected}, {alternative}"]
    return []


#: Families of types one can be written into another of (text into varchar, int4 into int8…).
_FAMILIES = (TEXT_TYPES, frozenset({"int2", "int4", "int8"}), JSON_TYPES,
             frozenset({"timestamptz", "timestamp"}))


def source_column_types(column: Column) -> frozenset[str]:
    """The destination column types a source column's values can be copied into: its own type, or
    one of its family (text types, numbers, json, timestamps); an enum's labels also fit text."""
    allowed = {column.type}
    for family in _FAMILIES:
        if column.type in family:
            allowed |= family
    if column.type in INTEGER_TYPES | NUMBER_TYPES:
        allowed |= NUMBER_TYPES
    if column.is_enum:
        allowed |= TEXT_TYPES
    return frozenset(allowed)


def _output_field_type(workload: Workload, field: str,
                       column: Column | None) -> tuple[str, frozenset[str], str | None]:
    """The column type an output field needs (its name, the types that hold it) and, for a bounded
    text column, what is wrong with its length (None when every valid value fits)."""
    if workload.output.is_text:
        return "text", frozenset({"text", "varchar", "citext"}), _length_problem(
            column, workload.output.max_chars, "output.max_chars")
    spec = workload.output.json_schema["properties"][field]
    expected, allowed = schema_column_types(spec)
    if "text" in allowed and column is not None and column.max_length is not None:
        return expected, allowed, _length_problem(column, spec.get("maxLength"),
                                                  f"maxLength in output.schema.properties.{field}")
    return expected, allowed, None


def _length_problem(column: Column | None, limit: int | None, setting: str) -> str | None:
    if column is None or column.max_length is None or (limit is not None and limit <= column.max_length):
        return None
    said = f"{setting} is {limit}" if limit is not None else f"nothing limits {setting.split(' in ')[0]}"
    return (f"holds at most {column.max_length} characters but {said} — set {setting} to at most "
            f"{column.max_length}, or widen the column (ALTER TABLE … ALTER COLUMN {column.name} TYPE text)")


def schema_column_types(spec: dict[str, Any]) -> tuple[str, frozenset[str]]:
    """The column types that hold every value a JSON Schema allows: a type's (``["string", "null"]``:
    the string's), an ``enum``'s or ``const``'s (by its values' types), else only json/jsonb."""
    types = spec.get("type")
    if types is None and ("enum" in spec or "const" in spec):
        values = spec.get("enum", [spec.get("const")])
        types = sorted({_json_type(v) for v in values})
    names = [types] if isinstance(types, str) else list(types or [])
    names = [t for t in names if t != "null"]
    if not names:
        return "jsonb", JSON_TYPES
    allowed = frozenset.intersection(*(COMPATIBLE.get(t, JSON_TYPES) for t in names))
    if not allowed:
        return "jsonb", JSON_TYPES  # values of several kinds: only json holds them all
    return _EXPECTED[names[0]] if len(names) == 1 else "jsonb", allowed


_EXPECTED = {"string": "text", "integer": "bigint", "number": "numeric", "boolean": "boolean",
             "object": "jsonb", "array": "jsonb"}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array" if isinstance(value, list) else "null"
