"""Queueing work for a workload's next night: by key, by a filter over its source, or again after a failure.

Every path ends in the ledger's ``nightshift.enqueue`` function (the one a team's own job calls in
SQL), so a key already pending is never queued twice. Keys are checked against the source key's
type first and queued as that type renders them; a filter is a column of the workload's source,
an operator from a fixed set and a value bound as a parameter: no text from the command line is
ever spliced into a statement.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from nightshift import queue
from nightshift.ledger import queue as requests
from nightshift.workloads.definition import Workload


class EnqueueError(ValueError):
    """Input that cannot be queued; the message names what and where."""


@dataclass(frozen=True)
class Enqueued:
    given: int  #: keys (or matching source rows) offered
    queued: int

    @property
    def already_pending(self) -> int:
        return self.given - self.queued


def read_keys(lines: Iterable[str], origin: str) -> list[tuple[str, str]]:
    """``(where, key)`` per non-blank line (surrounding whitespace dropped); ``where`` is ``origin:line``."""
    return [(f"{origin}:{n}", line.strip()) for n, line in enumerate(lines, 1) if line.strip()]


def enqueue_keys(conn: psycopg.Connection, workload: Workload, keys: Sequence[tuple[str, str]]) -> Enqueued:
    """Queue ``keys`` (from :func:`read_keys`) as the source key's type renders them; all or nothing."""
    if not keys:
        raise EnqueueError(f"no key to queue for {workload.name}: the input has no non-blank line")
    cast = queue.source_key_cast(conn, workload)
    canonical = requests.canonical_keys(conn, [key for _, key in keys], cast.cast)
    bad = [f"{where}: {key[:80]!r}"
           for (where, key), value in zip(keys, canonical, strict=True) if value is None]
    if bad:
        conn.rollback()
        raise EnqueueError(f"{len(bad)} key(s) are not a valid {cast.type_name} "
                           f"({workload.source.table}.{workload.source.key}), nothing queued: "
                           + "; ".join(bad[:10]) + ("; ..." if len(bad) > 10 else ""))
    queued = requests.enqueue(conn, workload.name, canonical)
    conn.commit()
    return Enqueued(len(set(canonical)), queued)


class Op(enum.StrEnum):
    EQ = "="
    NE = "!="
    GE = ">="
    LE = "<="
    GT = ">"
    LT = "<"


#: each operator as SQL, from literals only
_SQL_OP = {Op.EQ: sql.SQL("="), Op.NE: sql.SQL("<>"), Op.GE: sql.SQL(">="), Op.LE: sql.SQL("<="),
           Op.GT: sql.SQL(">"), Op.LT: sql.SQL("<")}

_FILTER = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*(>=|<=|!=|=|>|<)(.*)$", re.S)


@dataclass(frozen=True)
class Filter:
    """``column op value`` over the workload's source; the value is bound, cast to the column's type."""

    column: str
    op: Op
    value: str

    @classmethod
    def parse(cls, text: str, workload: Workload) -> Filter:
        match = _FILTER.match(text)
        if not match:
            raise EnqueueError(f"--where {text!r}: expected COLUMN OP VALUE with OP one of "
                               f"{', '.join(op.value for op in Op)} (e.g. --where customer_tier=enterprise)")
        column, op, value = match.groups()
        allowed = filter_columns(workload)
        if column not in allowed:
            raise EnqueueError(f"--where {text!r}: {column!r} is not a column workload {workload.name!r} "
                               f"declares for its source {workload.source.table}; filterable: "
                               f"{', '.join(allowed)}")
        return cls(column, Op(op), value)


def filter_columns(workload: Workload) -> list[str]:
    """The source columns a filter may name: the key, the declared columns, the timestamp column."""
    columns = [workload.source.key, *workload.source.columns]
    if workload.source.timestamp_column:
        columns.append(workload.source.timestamp_column)
    return list(dict.fromkeys(columns))


def window_filters(workload: Workload, since: datetime | None, until: datetime | None) -> list[Filter]:
    """``--since``/``--until``: the source's timestamp column in ``[since, until)``."""
    if since is None and until is None:
        return []
    column = workload.source.timestamp_column
    if not column:
        raise EnqueueError(f"--since/--until: workload {workload.name!r} declares no source.timestamp_column")
    return ([Filter(column, Op.GE, since.isoformat())] if since else []) + \
        ([Filter(column, Op.LT, until.isoformat())] if until else [])


def enqueue_where(conn: psycopg.Connection, workload: Workload, filters: Sequence[Filter]) -> Enqueued:
    """Queue the key of every source row all ``filters`` match."""
    if not filters:
        raise EnqueueError("no filter: give --where COLUMN=VALUE (repeatable), --since/--until, or keys")
    schema, table = workload.source.table.split(".")
    conditions, params = [], {}
    for n, f in enumerate(filters):
        type_ = queue.column_type(conn, workload.source.table, f.column)
        conditions.append(sql.SQL("s.{column} {op} CAST({param} AS {type})").format(
            column=sql.Identifier(f.column), op=_SQL_OP[f.op], param=sql.Placeholder(f"v{n}"),
            type=type_))
        params[f"v{n}"] = f.value
    try:
        matched, queued = requests.enqueue_matching(conn, workload.name, sql.Identifier(schema, table),
                                                    sql.Identifier(workload.source.key),
                                                    sql.SQL(" AND ").join(conditions), params)
    except psycopg.errors.DataError as exc:
        conn.rollback()
        shown = ", ".join(f"{f.column}{f.op.value}{f.value!r}" for f in filters)
        raise EnqueueError(f"--where {shown}: a value is not valid for its column's type in "
                           f"{workload.source.table}: {exc.diag.message_primary}") from None
    conn.commit()
    return Enqueued(matched, queued)


_STATUS = re.compile(r"^[a-z][a-z0-9_]*$")


def requeue(conn: psycopg.Connection, workload: Workload, statuses: Sequence[str],
            run_pk: int | None = None) -> requests.Requeued:
    """Queue again the keys whose latest item failed with one of ``statuses`` (an item's error_type:
    ``not_submitted``, ``expired_after_retries``...), unless answered or queued since."""
    for status in statuses:
        if not _STATUS.match(status):
            raise EnqueueError(f"--status {status!r}: an item's failure type is lower-case letters, "
                               "digits and _")
    present = requests.failure_types(conn, workload.name)
    if not set(statuses) & set(present):
        found = ", ".join(f"{t} ({n})" for t, n in present.items()) or "none"
        raise EnqueueError(f"no item of workload {workload.name!r} failed with {', '.join(statuses)}; "
                           f"its failures: {found}")
    result = requests.requeue(conn, workload.name, list(statuses), run_pk)
    conn.commit()
    return result
