"""The ledger's schema, versioned: ``nightshift db upgrade`` applies what a database lacks.

Each file of ``migrations/`` is one version (its leading number). An upgrade takes a
transaction-level advisory lock, so two processes upgrading at once apply each version once:
the second waits, then finds nothing left to do. Every version applies in the same transaction
as its row in ``nightshift.schema_migrations``, so a failed upgrade leaves the database at the
last version that applied. Databases created before versioning ran the same files, which are
idempotent up to 006: an upgrade re-runs them harmlessly and records them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import psycopg

from nightshift.paths import ledger_migrations_dir

#: pg_advisory_xact_lock key: 'nightshift.schema' as a signed 64-bit integer
_LOCK_KEY = int.from_bytes(hashlib.sha256(b"nightshift.schema").digest()[:8], "big", signed=True)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


class SchemaOutOfDate(RuntimeError):
    """The database's ledger is older than this Nightshift: run ``nightshift db upgrade``."""


def migrations() -> list[Migration]:
    found = []
    for path in sorted(ledger_migrations_dir().glob("*.sql")):
        number, _, name = path.stem.partition("_")
        found.append(Migration(int(number), name, path))
    return found


def head() -> int:
    return migrations()[-1].version


def applied_versions(conn: psycopg.Connection) -> set[int]:
    present = conn.execute("SELECT to_regclass('nightshift.schema_migrations') IS NOT NULL").fetchone()[0]
    if not present:
        return set()
    return {row[0] for row in conn.execute("SELECT version FROM nightshift.schema_migrations")}


def pending(conn: psycopg.Connection) -> list[Migration]:
    done = applied_versions(conn)
    return [m for m in migrations() if m.version not in done]


def upgrade(conn: psycopg.Connection) -> list[Migration]:
    """Apply every migration the database lacks, in order; return those applied (none: up to date)."""
    applied = []
    conn.commit()
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute("CREATE SCHEMA IF NOT EXISTS nightshift")
        conn.execute("""CREATE TABLE IF NOT EXISTS nightshift.schema_migrations (
                            version    integer     PRIMARY KEY,
                            name       text        NOT NULL,
                            applied_at timestamptz NOT NULL DEFAULT now())""")
    for migration in migrations():
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            if conn.execute("SELECT 1 FROM nightshift.schema_migrations WHERE version = %s",
                            (migration.version,)).fetchone():
                continue
            conn.execute(migration.sql)
            conn.execute("INSERT INTO nightshift.schema_migrations (version, name) VALUES (%s, %s)",
                         (migration.version, migration.name))
            applied.append(migration)
    return applied


def require_current(conn: psycopg.Connection) -> None:
    """Fail before any work when the ledger is missing or older than this code."""
    if missing := pending(conn):
        raise SchemaOutOfDate(
            f"the ledger schema in this database lacks version(s) {', '.join(str(m.version) for m in missing)} "
            f"({', '.join(m.name for m in missing)}): run `nightshift db upgrade` (or `airflow nightshift db-upgrade`) "
            "against it before the pipeline runs")
