"""Every statement on the ledger (``nightshift.*``) and the request queue lives in ``nightshift.ledger``.

The check reads the source with ``ast``: a string constant outside ``src/nightshift/ledger/`` that
holds an upper-case SQL keyword and names a ledger table or function (``nightshift.<name>``) or the
queue (``llm_requests``) is a statement that belongs in the ledger package, and so is a
``sql.Identifier("nightshift", ...)``. Docstrings are prose and are not read. ``devtools/`` and
``tests/`` are left out on purpose: the benchmark, the demo data and the tests seed and inspect
the ledger directly, as a test fixture does, and none of them ships in the runtime package.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from nightshift import paths

ROOT = paths.PROJECT_ROOT
SCANNED = ["src", "dags", "scripts"]
LEDGER = ROOT / "src" / "nightshift" / "ledger"

SQL_KEYWORD = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|FROM|JOIN|INTO|WHERE|RETURNING|CASE|WHEN|THEN|ELSE|"
                         r"CREATE|ALTER|DROP|TRUNCATE|LIKE)\b")
LEDGER_NAME = re.compile(r"\bnightshift\.[a-z_]+\b|\bllm_requests\b")


def _docstrings(tree: ast.Module) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def ledger_statements(source: str, path: str = "<string>") -> list[str]:
    """``path:line`` of each statement on the ledger or the queue in ``source``."""
    tree = ast.parse(source, filename=path)
    prose = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose:
            if SQL_KEYWORD.search(node.value) and LEDGER_NAME.search(node.value):
                found.append(f"{path}:{node.lineno}: {' '.join(node.value.split())[:90]}")
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = node.args[0]
            if name == "Identifier" and isinstance(first, ast.Constant) and first.value == "nightshift":
                found.append(f"{path}:{node.lineno}: Identifier('nightshift', ...)")
    return found


def scanned_files() -> list[Path]:
    return sorted(p for folder in SCANNED for p in (ROOT / folder).rglob("*.py")
                  if "__pycache__" not in p.parts and LEDGER not in p.parents)


def test_no_statement_on_the_ledger_or_the_queue_outside_the_ledger_package():
    files = scanned_files()
    assert any(p.name == "land.py" for p in files) and not any(LEDGER in p.parents for p in files)
    found = [hit for p in files
             for hit in ledger_statements(p.read_text(encoding="utf-8"), str(p.relative_to(ROOT)))]
    assert not found, "ledger or queue SQL outside src/nightshift/ledger/:\n" + "\n".join(found)


def test_the_ledger_package_holds_the_statements():
    """The scan recognises the statements it moved (so an empty result above is not a blind scan)."""
    hits = [hit for p in sorted(LEDGER.rglob("*.py"))
            for hit in ledger_statements(p.read_text(encoding="utf-8"), p.name)]
    assert len(hits) > 50


def test_what_the_scan_recognises():
    flagged = [
        'def f(conn):\n    conn.execute("SELECT count(*) FROM nightshift.items WHERE run_pk = %s", (1,))\n',
        'Q = """\nUPDATE app.llm_requests SET status = \'done\'\n"""\n',
        'from psycopg import sql\nq = sql.SQL("INSERT INTO {} VALUES (1)").format(sql.Identifier("nightshift", "x"))\n',
        'def f(conn):\n    return conn.execute("SELECT nightshift.take_batch_api_call(%s, %s)", (1, 2))\n',
        'from psycopg import sql\nv = sql.SQL("CASE WHEN {v} THEN true ELSE nightshift.is_valid_input({v}) END")\n',
    ]
    passed = [
        '"""Reads nightshift.runs FROM the ledger."""\n',
        'def f():\n    """SELECT from nightshift.items is described here."""\n',
        'CLASS = "nightshift.triggers.BatchWaitTrigger"\n',
        'def f(conn):\n    conn.execute("SELECT count(*) FROM app.ticket_classifications")\n',
        'from psycopg import sql\nq = sql.Identifier("app", "products")\n',
    ]
    for source in flagged:
        assert ledger_statements(source), source
    for source in passed:
        assert ledger_statements(source) == [], source
