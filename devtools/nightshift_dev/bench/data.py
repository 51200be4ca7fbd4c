"""The benchmark's data: its workload, its rows (made in SQL), and the two write baselines.

The workload is the shipped ticket classification with a shorter instructions prefix (the
handbook's label section, ~1.3 KB instead of 16 KB), so a 100,000-request night is about
200 MB of request bodies rather than 1.7 GB and the whole benchmark fits in minutes on two
cores. Everything per request (tool schema, item text, reply, destination row) is unchanged.

Source rows and queue rows are made with ``generate_series`` in one statement each: a
million queue rows take seconds, and no row passes through Python.

The two baselines for a step that writes rows:

* **floor**: the identical final rows, dumped with ``COPY … TO`` and COPYed raw (pre-encoded
  bytes, no per-row Python) into empty copies of every table the step writes, with the same
  columns, defaults, checks, indexes and foreign keys (a COPY into the tables themselves pays
  for all of them too; the same COPY without the foreign keys is reported beside it);
* **row by row**: the same final rows, one autocommitted ``INSERT … ON CONFLICT`` per table per
  result, as a naive streaming path writes them (into copies without foreign keys: generous to
  the baseline).
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import yaml
from psycopg import sql

from nightshift import db, paths
from nightshift_dev.demo_data import TICKET_TEMPLATES
from nightshift.workloads.definition import Workload, load_workload_file
from nightshift_dev.localdev.schema import apply_schema

WORKLOAD_NAME = "bench_tickets"
FLOOR_SCHEMA = "bench_floor"


def workload_definition() -> dict:
    """The shipped ticket classification, renamed and with the handbook's first section only."""
    source = paths.project_root() / "workloads" / "ticket_classification.yaml"
    raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    handbook = (source.parent / raw["prompt"]["instructions_file"]).read_text(encoding="utf-8")
    raw["name"] = WORKLOAD_NAME
    raw["description"] = "Benchmark copy of ticket_classification with a short instructions prefix."
    raw["instructions"] = handbook.split("\n## How to decide", 1)[0].strip() + "\n"
    raw["destination"]["asset"] = {"name": "app.ticket_classifications",
                                   "uri": "postgres://appdb:5432/nightshift/app/ticket_classifications"}
    return raw


def write_workload_dir(directory: Path) -> Path:
    """A workloads folder holding only the benchmark workload (for ``[nightshift] workloads_folder``)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{WORKLOAD_NAME}.yaml"
    path.write_text(yaml.safe_dump(workload_definition(), sort_keys=False), encoding="utf-8")
    return directory


def bench_workload(directory: Path) -> Workload:
    return load_workload_file(write_workload_dir(directory) / f"{WORKLOAD_NAME}.yaml")


def reset_schema(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("DROP SCHEMA IF EXISTS app CASCADE")
        conn.execute("DROP SCHEMA IF EXISTS nightshift CASCADE")
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(FLOOR_SCHEMA)))
        apply_schema(conn)


def _templates() -> tuple[list[str], list[str]]:
    pairs = [pair for label in TICKET_TEMPLATES.values() for pair in label]
    return [s for s, _ in pairs], [b for _, b in pairs]


def make_tickets(conn: psycopg.Connection, count: int, *, workload: str = WORKLOAD_NAME, enqueue: bool = True) -> int:
    """``count`` support tickets (and one queued request each), in SQL; returns the first ticket id."""
    subjects, bodies = _templates()
    base = conn.execute("SELECT coalesce(max(ticket_id), 0) + 1 FROM app.support_tickets").fetchone()[0]
    conn.execute(
        "INSERT INTO app.support_tickets (ticket_id, customer_email, customer_tier, subject, body, created_at) "
        "SELECT %(base)s + i, 'customer' || (%(base)s + i) || '@example.com', "
        "       (ARRAY['free', 'standard', 'standard', 'enterprise'])[1 + i %% 4], "
        "       (%(subjects)s::text[])[1 + (i * 7) %% %(n)s], (%(bodies)s::text[])[1 + (i * 7) %% %(n)s], "
        "       now() - (i %% 86400) * interval '1 second' "
        "  FROM generate_series(0, %(count)s - 1) AS i",
        {"base": base, "subjects": subjects, "bodies": bodies, "n": len(subjects), "count": count})
    if enqueue:
        conn.execute(
            "INSERT INTO app.llm_requests (workload, source_key) "
            "SELECT %s, ticket_id::text FROM app.support_tickets WHERE ticket_id >= %s ORDER BY ticket_id",
            (workload, base))
    conn.commit()
    conn.execute("ANALYZE app.support_tickets")
    conn.execute("ANALYZE app.llm_requests")
    conn.commit()
    return base


def make_queue(conn: psycopg.Connection, count: int, *, workload: str = WORKLOAD_NAME) -> None:
    """``count`` pending queue rows only (what collect reads), in SQL."""
    conn.execute("INSERT INTO app.llm_requests (workload, source_key) "
                 "SELECT %s, i::text FROM generate_series(1, %s) AS i", (workload, count))
    conn.commit()
    conn.execute("ANALYZE app.llm_requests")
    conn.commit()


# --- baselines ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    """The final rows a step wrote into one table: ``where`` selects them (``{}`` placeholders take
    ``params`` as literals)."""

    table: str
    where: sql.SQL
    params: tuple = ()
    conflict: tuple[str, ...] = ()  # the table's key, for the row-by-row upsert

    def condition(self) -> sql.Composable:
        return self.where.format(*map(sql.Literal, self.params))


def _dump(conn: psycopg.Connection, written: Written) -> bytes:
    buffer = io.BytesIO()
    query = sql.SQL("COPY (SELECT * FROM {} WHERE {}) TO STDOUT").format(
        sql.Identifier(*written.table.split(".")), written.condition())
    with conn.cursor() as cur, cur.copy(query) as copy:
        for chunk in copy:
            buffer.write(chunk)
    return buffer.getvalue()


# The floor tables get the source's foreign keys from the catalog's own definitions, applied by
# the server: no SQL text passes through Python.
CLONE_FOREIGN_KEYS_FUNCTION = """
CREATE OR REPLACE FUNCTION pg_temp.clone_foreign_keys(source regclass, target regclass) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    definition text;
    cloned integer := 0;
BEGIN
    FOR definition IN SELECT pg_get_constraintdef(oid) FROM pg_constraint
                       WHERE conrelid = source AND contype = 'f' LOOP
        EXECUTE format('ALTER TABLE %s ADD %s', target, definition);
        cloned := cloned + 1;
    END LOOP;
    RETURN cloned;
END
$$
"""


def _clone(conn: psycopg.Connection, table: str, *, foreign_keys: bool = True) -> sql.Composable:
    """An empty copy of ``table``: the same columns, defaults, checks, indexes and foreign keys."""
    name = sql.Identifier(FLOOR_SCHEMA, table.replace(".", "__"))
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(FLOOR_SCHEMA)))
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
    conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(name, sql.Identifier(*table.split("."))))
    if foreign_keys:  # the catalog's own definitions, applied by the server: no SQL text passes through Python
        conn.execute(CLONE_FOREIGN_KEYS_FUNCTION)
        conn.execute("SELECT pg_temp.clone_foreign_keys(%s::regclass, %s::regclass)",
                     (table, f"{FLOOR_SCHEMA}.{table.replace('.', '__')}"))
    conn.commit()
    return name


@dataclass(frozen=True)
class Floor:
    seconds: float  # into copies with the tables' foreign keys: the floor
    seconds_without_foreign_keys: float  # the same COPY with no reference checked, for context
    rows: int


def copy_floor(dsn: str, written: list[Written]) -> Floor:
    """Seconds to COPY the identical final rows into empty copies of the tables."""
    with psycopg.connect(dsn) as conn:
        dumps = [(w.table, _dump(conn, w)) for w in written]
        conn.commit()
        rows = sum(data.count(b"\n") for _, data in dumps)
        seconds = [_timed_copy(conn, dumps, foreign_keys=keys) for keys in (True, False)]
    return Floor(seconds[0], seconds[1], rows)


def _timed_copy(conn: psycopg.Connection, dumps: list[tuple[str, bytes]], *, foreign_keys: bool) -> float:
    names = [_clone(conn, table, foreign_keys=foreign_keys) for table, _ in dumps]
    conn.execute("CHECKPOINT")
    started = time.perf_counter()
    with conn.cursor() as cur:
        for name, (_, data) in zip(names, dumps, strict=True):
            with cur.copy(sql.SQL("COPY {} FROM STDIN").format(name)) as copy:
                view = memoryview(data)
                for offset in range(0, len(view), 1 << 20):
                    copy.write(view[offset:offset + (1 << 20)])
    conn.commit()
    elapsed = time.perf_counter() - started
    for name in names:
        conn.execute(sql.SQL("DROP TABLE {}").format(name))
    conn.commit()
    return elapsed


def row_by_row(dsn: str, written: list[Written], sample: int | None) -> tuple[float, int, int]:
    """Seconds to upsert the final rows one autocommitted statement at a time, per result.

    Result ``k`` writes row ``k`` (in key order) of every table: each ``Written.where`` selects
    one row per result. The statements are prepared, as a long-lived worker's would be. Times
    the first ``sample`` results (all when None); returns (seconds, results timed, results in total).
    """
    with psycopg.connect(dsn) as conn:
        tables = []
        for w in written:
            name = _clone(conn, w.table, foreign_keys=False)
            columns = [r[0] for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                "AND NOT attisdropped ORDER BY attnum", (w.table,))]
            query = sql.SQL("SELECT * FROM {} WHERE {} ORDER BY {}").format(
                sql.Identifier(*w.table.split(".")), w.condition(), sql.SQL(", ").join(map(sql.Identifier, w.conflict)))
            rows = conn.execute(query).fetchall()
            updates = [c for c in columns if c not in w.conflict]
            upsert = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}").format(
                name, sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.SQL(", ").join(sql.Placeholder() * len(columns)),
                sql.SQL(", ").join(map(sql.Identifier, w.conflict)),
                sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in updates))
            tables.append((upsert, rows))
        conn.commit()
    total = min(len(rows) for _, rows in tables)
    count = total if not sample else min(sample, total)
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        for k in range(count):
            for statement, rows in tables:
                conn.execute(statement, rows[k], prepare=True)
        elapsed = time.perf_counter() - started
        for name in [w.table for w in written]:
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(FLOOR_SCHEMA, name.replace(".", "__"))))
    return elapsed, count, total
