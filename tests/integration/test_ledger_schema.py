"""``nightshift db upgrade``: versioned, idempotent, safe from two processes at once, and it carries
a database made before versioning (and before the backend-neutral rename) forward with its data."""

from __future__ import annotations

import subprocess
import sys
import uuid

import psycopg
import pytest

from nightshift.ledger import schema


@pytest.fixture
def empty_db(pg_cluster):
    name = f"ledger_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_cluster.dsn("postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield pg_cluster.dsn(name)
    with psycopg.connect(pg_cluster.dsn("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def versions(dsn: str) -> list[tuple[int, str]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT version, name FROM nightshift.schema_migrations ORDER BY version").fetchall()


def test_upgrade_creates_the_ledger_in_an_empty_database_and_then_has_nothing_to_do(empty_db):
    with psycopg.connect(empty_db) as conn:
        applied = schema.upgrade(conn)
        assert [m.version for m in applied] == [m.version for m in schema.migrations()]
        assert schema.upgrade(conn) == []
        schema.require_current(conn)
        columns = {c for (c,) in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'nightshift' AND table_name = 'batches'")}
    assert {"backend", "backend_batch_id"} <= columns and "anthropic_batch_id" not in columns
    assert versions(empty_db) == [(m.version, m.name) for m in schema.migrations()]


def test_two_processes_upgrading_at_once_apply_each_version_once(empty_db):
    code = "import sys, psycopg; from nightshift.ledger import schema; print(len(schema.upgrade(psycopg.connect(sys.argv[1]))))"
    procs = [subprocess.Popen([sys.executable, "-c", code, empty_db], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in results]
    counts = sorted(int(out.strip()) for out, _ in results)
    assert sum(counts) == len(schema.migrations())  # every version once, whichever process applied it
    assert versions(empty_db) == [(m.version, m.name) for m in schema.migrations()]


def test_a_database_from_before_versioning_keeps_its_batches_through_the_rename(empty_db):
    before_versioning = [m for m in schema.migrations() if m.version <= 6]
    with psycopg.connect(empty_db) as conn:
        for migration in before_versioning:  # what `db-init` did: every file, no version table
            conn.execute(migration.sql)
        run_pk = conn.execute(
            "INSERT INTO nightshift.runs (workload, dag_id, airflow_run_id, model, prompt_version, deadline_at) "
            "VALUES ('w', 'd', 'r', 'm', 'v', now()) RETURNING run_pk").fetchone()[0]
        conn.execute("INSERT INTO nightshift.batches (run_pk, round, seq, request_count, body_bytes, anthropic_batch_id) "
                     "VALUES (%s, 0, 0, 1, 100, 'msgbatch_old')", (run_pk,))
        conn.commit()
        behind = r"lacks version\(s\) 2, 3, 4, 5, 6, 7\b.* \(.*backend_neutral.*\): run `nightshift db upgrade`"
        with pytest.raises(schema.SchemaOutOfDate, match=behind):
            schema.require_current(conn)
        assert [m.version for m in schema.upgrade(conn)] == [m.version for m in schema.migrations()]
        row = conn.execute("SELECT backend, backend_batch_id FROM nightshift.batches").fetchone()
    assert row == ("anthropic", "msgbatch_old")


def test_the_command_upgrades_and_checks(empty_db):
    def nightshift(*args):
        return subprocess.run([sys.executable, "-m", "nightshift.cli", *args, "--dsn", empty_db],
                              capture_output=True, text=True, timeout=120)

    pending = nightshift("db", "check")
    assert pending.returncode == 1 and "pending" in pending.stdout
    done = nightshift("db", "upgrade")
    assert done.returncode == 0 and f"at version {schema.head()}: applied 002_ledger_schema" in done.stdout
    again = nightshift("db", "upgrade")
    assert again.returncode == 0 and "(up to date)" in again.stdout
    assert nightshift("db", "check").returncode == 0
