"""No SQL built by string formatting, and identifiers from workload definitions validated and quoted.

The lint (``tests/chaos/sql_lint.py``) reads the code that ships: the ``nightshift`` package,
the plugin, the DAG files, the scripts and the emulator. ``tests/`` is left out on purpose:
its SQL is written by the tests about tables and databases the tests name themselves
(``tests/conftest.py`` creates a database named after its own pid), it never runs in a
deployment, and it takes no input from outside the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nightshift import paths
from nightshift.deployment import load_workloads
from nightshift.workloads import WorkloadDefinitionError
from tests.chaos.sql_lint import lint_paths, lint_source

pytestmark = pytest.mark.chaos

ROOT = paths.PROJECT_ROOT
SHIPPED = ["src", "devtools", "dags", "scripts"]


def shipped_python() -> list[Path]:
    return sorted(p for folder in SHIPPED for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def test_no_string_formatted_sql_in_the_code_that_ships():
    files = shipped_python()
    assert len(files) > 50 and any(p.name == "land.py" for p in files)  # the lint really read the package
    findings = lint_paths(files, ROOT)
    assert not findings, "SQL built by string formatting (use psycopg.sql):\n" + "\n".join(map(str, findings))


# The lint itself: each pattern it must catch, and the safe compositions it must let through. -----

CAUGHT = {
    "f-string": 'def f(cur, t):\n    cur.execute(f"SELECT * FROM {t}")\n',
    "percent": 'def f(cur, t):\n    cur.execute("SELECT * FROM %s" % t)\n',
    "format": 'def f(cur, t):\n    cur.execute("SELECT * FROM {}".format(t))\n',
    "concatenation": 'def f(cur, t):\n    cur.execute("SELECT * FROM " + t)\n',
    "augmented": 'def f(cur, t):\n    q = "SELECT * FROM x"\n    q += " WHERE y = " + t\n    cur.execute(q)\n',
    "through a variable": 'def f(conn, t):\n    query = f"DELETE FROM {t}"\n    conn.execute(query, ())\n',
    "module constant": 'Q = "SELECT 1 " + "FROM x"\ndef f(conn):\n    conn.execute(Q)\n',
    "copy": 'def f(cur, t):\n    with cur.copy(f"COPY {t} FROM STDIN"):\n        pass\n',
    "executemany": 'def f(cur, t, rows):\n    cur.executemany("INSERT INTO " + t + " VALUES (%s)", rows)\n',
    "SQL() of an f-string": 'from psycopg import sql\ndef f(t):\n    return sql.SQL(f"SELECT {t}")\n',
    "SQL() of a parameter": 'from psycopg import sql\ndef f(template):\n    return sql.SQL(template)\n',
    "SQL() of a catalog value": 'from psycopg import sql\ndef f(conn):\n    t = conn.execute("SELECT 1").fetchone()[0]\n'
                                '    return sql.SQL(t)\n',
    "keyword argument": 'def f(cur, t):\n    cur.execute(query=f"SELECT {t}")\n',
    "a wrapper": 'class S:\n    def _fetch(self, q, a=()):\n        return self.c.execute(q, a)\n'
                 '    def get(self, t):\n        return self._fetch(f"SELECT {t}")\n',
    "conditional": 'def f(cur, t, n):\n    cur.execute(f"SELECT {t}" if n else "SELECT 1")\n',
}

ALLOWED = {
    "literal with parameters": 'def f(cur, v):\n    cur.execute("SELECT * FROM x WHERE y = %s", (v,))\n',
    "implicit literal concatenation": 'def f(cur):\n    cur.execute("SELECT 1 "\n                "FROM x")\n',
    "psycopg composition": 'from psycopg import sql\ndef f(cur, t):\n'
                           '    cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(t)))\n',
    "composed concatenation": 'from psycopg import sql\ndef f(cur, w):\n'
                              '    cur.execute(sql.SQL("SELECT 1 ") + w + sql.SQL(" LIMIT 1"))\n',
    "composed +=": 'from psycopg import sql\ndef f(cur):\n    q = sql.SQL("SELECT 1")\n    q += sql.SQL(" LIMIT 1")\n'
                   '    cur.execute(q)\n',
    "SQL() of a module constant": 'from psycopg import sql\nQ = "SELECT 1"\ndef f():\n    return sql.SQL(Q)\n',
    "shutil.copy": 'import shutil\ndef f(a, b):\n    shutil.copy(f"{a}.txt", b)\n',
    "a query from a builder": 'def f(cur, build):\n    cur.execute(build("x"))\n',
    "messages are not queries": 'def f(log, t):\n    log.info(f"SELECT {t}")\n',
}


@pytest.mark.parametrize("source", CAUGHT.values(), ids=CAUGHT.keys())
def test_the_lint_catches(source):
    assert lint_source(source), source


@pytest.mark.parametrize("source", ALLOWED.values(), ids=ALLOWED.keys())
def test_the_lint_lets_through(source):
    assert lint_source(source) == []


# Identifiers from a workload definition ------------------------------------------------------

UNSAFE_IDENTIFIERS = [
    ("source.table", lambda d: d["source"].update(table='app.tickets"; DROP TABLE app.llm_requests; --')),
    ("source.table", lambda d: d["source"].update(table="app.Support_Tickets")),
    ("source.key", lambda d: d["source"].update(key="ticket_id = ticket_id OR 1=1")),
    ("source.columns", lambda d: d["source"].update(columns=["subject", "body); DELETE FROM app.products; --"])),
    ("source.timestamp_column", lambda d: d["source"].update(timestamp_column="created_at; --")),
    ("destination.table", lambda d: d["destination"].update(table="app.ticket_classifications x")),
    ("destination.key", lambda d: d["destination"].update(key='"ticket_id"')),
    ("destination.written_at_column", lambda d: d["destination"].update(written_at_column="now()")),
    ("destination.columns", lambda d: d["destination"]["columns"].update({"label, rationale": "label"})),
]


@pytest.mark.parametrize(("field", "change"), UNSAFE_IDENTIFIERS, ids=[f for f, _ in UNSAFE_IDENTIFIERS])
def test_an_unsafe_identifier_in_a_definition_is_refused_naming_the_field(tmp_path, field, change):
    import shutil

    import yaml

    folder = tmp_path / "workloads"
    shutil.copytree((paths.PROJECT_ROOT / "workloads"), folder)
    path = folder / "ticket_classification.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(WorkloadDefinitionError) as raised:
        load_workloads(folder)
    assert "workload 'ticket_classification'" in str(raised.value)
    assert f"field {field}" in str(raised.value)


def test_identifiers_reach_postgres_quoted(app_db):
    """Even a valid identifier goes through ``sql.Identifier``: a reserved word as a column still works."""
    from nightshift.destination import upsert_statement
    from nightshift.deployment import get_workload

    workload = get_workload("ticket_classification")
    text = upsert_statement(workload).as_string(app_db)
    assert 'INSERT INTO "app"."ticket_classifications" AS t ("ticket_id", "label", "rationale"' in text
    assert 'ON CONFLICT ("ticket_id")' in text


def test_key_casts_use_the_catalogs_quoted_type_name(app_db):
    from nightshift.queue import column_type

    assert column_type(app_db, "app.support_tickets", "ticket_id").as_string(app_db) == '"pg_catalog"."int8"'
    assert column_type(app_db, "app.llm_requests", "source_key").as_string(app_db) == '"pg_catalog"."text"'
    with pytest.raises(LookupError, match="no column"):
        column_type(app_db, "app.support_tickets", "no_such_column")
