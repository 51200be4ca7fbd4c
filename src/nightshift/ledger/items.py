"""``nightshift.items``: one row per request of a run, each ending ``succeeded`` or ``failed``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from nightshift.ledger.runs import Run
from nightshift.ledger.status import ItemStatus
from nightshift.workloads.definition import Workload

if TYPE_CHECKING:
    from nightshift.queue import KeyCast


def item_counts(conn: psycopg.Connection, run: Run) -> dict[ItemStatus, int]:
    return {ItemStatus(status): n for status, n in conn.execute(
        "SELECT status, count(*) FROM nightshift.items WHERE run_pk = %s GROUP BY status", (run.run_pk,)
    ).fetchall()}


def failure_counts(conn: psycopg.Connection, run: Run) -> dict[str, int]:
    return dict(conn.execute(
        "SELECT error_type, count(*) FROM nightshift.items WHERE run_pk = %s AND status = 'failed' "
        "GROUP BY error_type ORDER BY 2 DESC", (run.run_pk,)
    ).fetchall())


def count(conn: psycopg.Connection, run_pk: int) -> int:
    return conn.execute("SELECT count(*) FROM nightshift.items WHERE run_pk = %s", (run_pk,)).fetchone()[0]


def pending_count(conn: psycopg.Connection, run_pk: int) -> int:
    return conn.execute("SELECT count(*) FROM nightshift.items WHERE run_pk = %s AND status = 'pending'",
                        (run_pk,)).fetchone()[0]


def fail_unbatched(conn: psycopg.Connection, run_pk: int, error_type: str, message: str) -> list[int | None]:
    """Fail every pending item no batch holds yet; returns their queue request ids (None: an interval
    item)."""
    return [request_id for (request_id,) in conn.execute(
        "UPDATE nightshift.items SET status = 'failed', error_type = %s, error_message = %s, updated_at = now() "
        "WHERE run_pk = %s AND status = 'pending' AND batch_pk IS NULL RETURNING request_id",
        (error_type, message, run_pk)).fetchall()]


def fail_unsubmitted(conn: psycopg.Connection, run_pk: int, error_type: str, message: str) -> list[int | None]:
    """Fail every item of the run that no batch took (pending, or waiting for a retry round); returns
    their queue request ids (None: an interval item)."""
    return [request_id for (request_id,) in conn.execute(
        "UPDATE nightshift.items SET status = 'failed', error_type = %s, error_message = %s, updated_at = now() "
        "WHERE run_pk = %s AND status IN ('pending', 'retry') RETURNING request_id",
        (error_type, message, run_pk)).fetchall()]


def waiting_for_round(conn: psycopg.Connection, run_pk: int, round_: int) -> int:
    """Items a retry round would submit: marked for retry, or already in that round and not yet landed."""
    return conn.execute(
        "SELECT count(*) FROM nightshift.items WHERE run_pk = %s AND "
        "(status = 'retry' OR (round = %s AND status IN ('pending', 'submitted')))",
        (run_pk, round_)).fetchone()[0]


def analyze(conn: psycopg.Connection) -> None:
    """A night can add a large share of the table at once; plan the next steps on real counts."""
    conn.execute("ANALYZE nightshift.items")


# Interval mode: one item per source row that ``rows`` selects (``FROM`` onwards). Keys that are
# not custom_id-safe are hashed; the item keeps the key itself.
INTERVAL_INTO_LEDGER = sql.SQL("""
INSERT INTO nightshift.items (run_pk, custom_id, source_key, source_digest)
SELECT %(run_pk)s,
       'r' || %(run_pk)s || '-' || CASE WHEN s.{key}::text ~ '^[a-zA-Z0-9_-]{{1,40}}$' THEN 'k' || s.{key}::text
                                      ELSE 'h' || md5(s.{key}::text) END,
       s.{key}::text, {digest}
""")
INTERVAL_INTO_LEDGER_END = sql.SQL("ON CONFLICT (run_pk, custom_id) DO NOTHING")

# An interval row that failed invalid_input in an earlier interval run of the workload at the same prompt
# version, the source row then having the digest it has now. Parameters: workload, version.
FAILED_INVALID_UNCHANGED = sql.SQL("""EXISTS (
    SELECT 1 FROM nightshift.items fi JOIN nightshift.runs fr ON fr.run_pk = fi.run_pk
     WHERE fr.workload = %(workload)s AND fr.mode = 'interval' AND fr.prompt_version = %(version)s
       AND fi.error_type = 'invalid_input' AND fi.source_key = {key} AND fi.source_digest = {digest})""")


def failed_invalid_unchanged(source_key: sql.Composable, digest: sql.Composable) -> sql.Composed:
    """A condition on a source row (its key as text, its digest): it already failed ``invalid_input``
    as it is now."""
    return FAILED_INVALID_UNCHANGED.format(key=source_key, digest=digest)


def add_interval_rows(conn: psycopg.Connection, key: sql.Identifier, digest: sql.Composable,
                      rows: sql.Composable, params: dict[str, Any]) -> int:
    """Add an item for each source row ``rows`` selects (aliased ``s``, keyed by ``key``, ``digest`` its
    source digest); return how many were new."""
    statement = INTERVAL_INTO_LEDGER.format(key=key, digest=digest) + rows + INTERVAL_INTO_LEDGER_END
    return conn.execute(statement, params).rowcount


CLOSE_OPEN_ITEMS = """
WITH closed AS MATERIALIZED (
    UPDATE nightshift.items i
       SET status = 'failed', updated_at = now(),
           error_type = CASE
               WHEN i.status = 'retry' THEN coalesce(i.error_type, 'error') || '_after_retries'
               WHEN %(past_deadline)s THEN 'deadline_exceeded'
               WHEN i.status = 'submitted' THEN 'not_landed'
               ELSE 'not_submitted' END,
           error_message = CASE
               WHEN i.status = 'retry' THEN 'no retry round left: ' || coalesce(i.error_message, '')
               WHEN i.status = 'submitted' THEN coalesce(
                   r.details -> 'causes' ->> 'land', 'its batch ended or was cancelled without being landed')
               WHEN %(past_deadline)s THEN 'the run''s deadline passed before this request was submitted'
               ELSE coalesce(r.details -> 'causes' ->> 'submit',
                             'the run ended before this request was submitted') END
      FROM nightshift.runs r
     WHERE r.run_pk = i.run_pk AND i.run_pk = %(run_pk)s AND i.status IN ('pending', 'submitted', 'retry')
 RETURNING i.request_id, i.error_type, i.error_message
)
UPDATE app.llm_requests q
   SET status = 'failed', completed_at = now(), error = c.error_type || ': ' || c.error_message
  FROM closed c
 WHERE q.request_id = c.request_id AND NOT %(shadow)s
"""


def close_open_items(conn: psycopg.Connection, run: Run, *, past_deadline: bool) -> None:
    """Fail every item still open, with the reason it stopped, and its queue request with it (not a
    shadow run's)."""
    conn.execute(CLOSE_OPEN_ITEMS,
                 {"run_pk": run.run_pk, "past_deadline": past_deadline, "shadow": run.shadow})


def mean_output_tokens(conn: psycopg.Connection, workload: str) -> Decimal | None:
    """The mean output of a workload's succeeded requests, over every run (None without history)."""
    return conn.execute(
        "SELECT avg(i.output_tokens) FROM nightshift.items i JOIN nightshift.runs r USING (run_pk) "
        "WHERE r.workload = %s AND i.status = 'succeeded'", (workload,)).fetchone()[0]


def failed_by(conn: psycopg.Connection, run_pk: int, round_: int,
              error_types: Iterable[str]) -> dict[str, int]:
    """How many of the round's items failed with each of ``error_types`` (those that did)."""
    return dict(conn.execute(
        "SELECT error_type, count(*) FROM nightshift.items WHERE run_pk = %s AND round = %s AND status = 'failed' "
        "AND error_type = ANY(%s) GROUP BY 1", (run_pk, round_, sorted(error_types))).fetchall())


def retry_missing_results(conn: psycopg.Connection, batch_pk: int) -> int:
    """The batch ended without a result for these items: they go to the next round. Returns how many."""
    return conn.execute(
        "UPDATE nightshift.items SET status = 'retry', error_type = 'missing_result', "
        "error_message = 'the batch ended without a result for this request', updated_at = now() "
        "WHERE batch_pk = %s AND status = 'submitted'", (batch_pk,)).rowcount


#: A batch whose results can no longer be read: its open items fail with the reason, and the
#: queue rows with them, in one statement.
FAIL_BATCH_ITEMS = """
WITH failed AS MATERIALIZED (
    UPDATE nightshift.items SET status = 'failed', error_type = %(error_type)s, error_message = %(message)s,
                                updated_at = now()
     WHERE batch_pk = %(batch_pk)s AND status = 'submitted'
 RETURNING request_id
), queue AS (
    UPDATE app.llm_requests q
       SET status = 'failed', completed_at = now(), error = %(error_type)s || ': ' || %(message)s
      FROM failed f
     WHERE q.request_id = f.request_id AND NOT %(shadow)s
)
SELECT count(*) FROM failed
"""


def fail_batch_items(conn: psycopg.Connection, batch_pk: int, *, error_type: str, message: str,
                     shadow: bool) -> int:
    """Fail the batch's open items (and their queue requests, unless a shadow run's); returns how many."""
    return conn.execute(FAIL_BATCH_ITEMS, {"error_type": error_type, "message": message, "batch_pk": batch_pk,
                                           "shadow": shadow}).fetchone()[0]


#: The usage of a result that was billed but not landed (the item stays ``submitted``).
RECORD_BILLED = (
    "UPDATE nightshift.items SET input_tokens = %s, output_tokens = %s, cache_creation_input_tokens = %s, "
    "cache_read_input_tokens = %s, cache_write_5m_tokens = %s, cache_write_1h_tokens = %s, cost_usd = %s, "
    "updated_at = now() WHERE run_pk = %s AND round = %s AND custom_id = %s AND status = 'submitted'")


def record_billed(conn: psycopg.Connection, billed: Sequence[tuple]) -> None:
    """Per item: ``(the seven usage and cost columns of RECORD_BILLED, run_pk, round, custom_id)``."""
    with conn.cursor() as cur:
        cur.executemany(RECORD_BILLED, billed)


def land_from(staging: sql.Identifier, item_columns: Sequence[str],
              value_columns: Sequence[str]) -> sql.Composed:
    """The landing's item update: each item of the round still ``submitted`` takes its columns from
    the ``staging`` row of its custom_id (``item_columns``, custom_id first) and keeps the model it was
    sent to (an item without one was sent to ``first_model``); returns what the destination, the
    queue and the attempt record need of it: source_key, request_id, status, error_type,
    error_message, ``value_columns``, model (the reply's), item_model (the one it was sent to),
    custom_id and its usage. An item already landed is not returned, so nothing lands twice.
    Parameters: ``run_pk``, ``round``, ``first_model``."""
    updates = sql.SQL(", ").join(sql.SQL("{0} = l.{0}").format(sql.Identifier(c)) for c in item_columns[1:])
    return sql.SQL(
        "UPDATE nightshift.items i SET {updates}, model = coalesce(i.model, %(first_model)s), "
        "updated_at = now() FROM {staging} l "
        "WHERE i.run_pk = %(run_pk)s AND i.custom_id = l.custom_id AND i.round = %(round)s "
        "AND i.status = 'submitted' "
        "RETURNING i.source_key, i.request_id, l.status, l.error_type, l.error_message, {values}, l.model, "
        "i.model AS item_model, i.custom_id, {usage}"
    ).format(updates=updates, staging=staging,
             values=sql.SQL(", ").join(sql.SQL("l.{}").format(sql.Identifier(c)) for c in value_columns),
             usage=sql.SQL(", ").join(sql.SQL("l.{}").format(sql.Identifier(c)) for c in ATTEMPT_USAGE))


#: What an attempt record keeps of a result's usage (the items' columns of the same names).
ATTEMPT_USAGE = ("input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
                 "cache_read_input_tokens", "cost_usd")


def attempts_from(landed: sql.Identifier) -> sql.Composed:
    """The insert that records each result ``landed`` (:func:`land_from`'s output) returns as an
    attempt of its item, with the model it was sent to. Parameters: ``run_pk``, ``round``."""
    usage = sql.SQL(", ").join(map(sql.Identifier, ATTEMPT_USAGE))
    return sql.SQL(
        "INSERT INTO nightshift.attempts (run_pk, custom_id, round, model, status, error_type, "
        "error_message, {usage}) SELECT %(run_pk)s, custom_id, %(round)s, item_model, status, error_type, "
        "error_message, {usage} FROM {landed}").format(usage=usage, landed=landed)


def models_of_batch(conn: psycopg.Connection, batch_pk: int, first_model: str) -> dict[str, str]:
    """``{custom_id: the model it was sent to}`` for the batch's items (none recorded: ``first_model``)."""
    return dict(conn.execute("SELECT custom_id, coalesce(model, %s) FROM nightshift.items "
                             "WHERE batch_pk = %s", (first_model, batch_pk)).fetchall())


#: An escalated item goes to the model after the one it was sent to; every promoted item leaves its
#: earlier attempt's usage to ``nightshift.attempts``, so the item holds its current round's only.
PROMOTE_RETRIES = """
UPDATE nightshift.items
   SET round = %(round)s, status = 'pending', batch_pk = NULL, updated_at = now(),
       model = CASE WHEN error_type = 'escalated' THEN coalesce(%(next_models)s::jsonb ->> model, model)
                    ELSE model END,
       input_tokens = NULL, output_tokens = NULL, cache_creation_input_tokens = NULL,
       cache_read_input_tokens = NULL, cache_write_5m_tokens = NULL, cache_write_1h_tokens = NULL,
       cost_usd = NULL
 WHERE run_pk = %(run_pk)s AND status = 'retry' AND round < %(round)s
"""


def promote_retries(conn: psycopg.Connection, run_pk: int, round_: int,
                    next_models: dict[str, str] | None = None) -> None:
    """Move the items an earlier round marked for retry into ``round_``, unassigned; an escalated one
    to the model ``next_models`` names after its own (an ordinary retry keeps its model)."""
    conn.execute(PROMOTE_RETRIES,
                 {"round": round_, "run_pk": run_pk, "next_models": Jsonb(next_models or {})})


def pending_with_sources(conn: psycopg.Connection, workload: Workload, run_pk: int, round_: int,
                         batch_pk: int | None, key: KeyCast, *, name: str, itersize: int) -> psycopg.Cursor:
    """The round's pending items (unassigned, or ``batch_pk``'s) with their source rows, in custom_id
    order, from a server-side cursor ``name`` held across commits. Each row: custom_id, source_key,
    request_id, the model it goes to (None: the run's), whether the key is a valid value of its type,
    whether the source row exists, then the source key and columns."""
    columns = [workload.source.key, *workload.source.columns]
    schema, table = workload.source.table.split(".")
    assigned = sql.SQL("i.batch_pk IS NULL") if batch_pk is None else sql.SQL("i.batch_pk = %s")
    source_key = sql.SQL("i.source_key")
    query = sql.SQL(
        "SELECT i.custom_id, i.source_key, i.request_id, i.model, {valid}, s.{key} IS NOT NULL, {columns} "
        "FROM nightshift.items i LEFT JOIN {table} s ON s.{key} = {cast} "
        "WHERE i.run_pk = %s AND i.round = %s AND i.status = 'pending' AND {assigned} ORDER BY i.custom_id"
    ).format(
        key=sql.Identifier(workload.source.key),
        columns=sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in columns),
        table=sql.Identifier(schema, table),
        valid=key.valid(source_key),
        cast=key.cast(source_key),
        assigned=assigned,
    )
    cursor = conn.cursor(name=name, withhold=True)
    cursor.itersize = itersize
    cursor.execute(query, (run_pk, round_) if batch_pk is None else (run_pk, round_, batch_pk))
    return cursor


def request_id(conn: psycopg.Connection, run_pk: int, custom_id: str) -> int | None:
    return conn.execute("SELECT request_id FROM nightshift.items WHERE run_pk = %s AND custom_id = %s",
                        (run_pk, custom_id)).fetchone()[0]


def assign_to_batch(conn: psycopg.Connection, run_pk: int, batch_pk: int, custom_ids: Sequence[str]) -> None:
    conn.execute("UPDATE nightshift.items SET batch_pk = %s WHERE run_pk = %s AND custom_id = ANY(%s)",
                 (batch_pk, run_pk, custom_ids))


def mark_submitted(conn: psycopg.Connection, batch_pk: int) -> None:
    """The batch's pending items are in a created batch now."""
    conn.execute("UPDATE nightshift.items SET status = 'submitted', updated_at = now() "
                 "WHERE batch_pk = %s AND status = 'pending'", (batch_pk,))


def fail_invalid_input(conn: psycopg.Connection, run_pk: int, custom_id: str, message: str) -> None:
    """A bad source row: the item fails ``invalid_input`` and leaves its batch."""
    conn.execute(
        "UPDATE nightshift.items SET status = 'failed', error_type = 'invalid_input', error_message = %s, "
        "batch_pk = NULL, updated_at = now() WHERE run_pk = %s AND custom_id = %s",
        (message, run_pk, custom_id),
    )
