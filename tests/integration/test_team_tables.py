"""A team's own tables (#19): a source that is a join with a text key, a destination with none of
Nightshift's columns, a plain-text output, work queued with the CLI and the SQL function, and a
contract mismatch that fails before anything is sent.

Everything the test works on is created here from SQL it owns, and the workloads are written to a
folder of their own outside the repository (the deployment's [nightshift] workloads_folder); the nights
run through the same functions the DAG's tasks call, against the emulator over HTTP.
"""

from __future__ import annotations

import textwrap

import pytest

from nightshift.contract import ContractMismatch
from nightshift.streaming import run_streaming
from nightshift.workloads.definition import load_workload_file
from tests.batch_night import run_night
from tests.helpers import emulator_backend
from tests.integration.test_shadow_and_parity import shadow_night

TEAM_TABLES = """
DROP SCHEMA IF EXISTS team CASCADE;
CREATE SCHEMA team;
CREATE TABLE team.authors (author_id integer PRIMARY KEY, name text NOT NULL);
CREATE TABLE team.articles (slug text PRIMARY KEY, author_id integer NOT NULL REFERENCES team.authors,
                            title text NOT NULL, body text NOT NULL);
CREATE VIEW team.article_feed AS
  SELECT a.slug, a.title, a.body, w.name AS author FROM team.articles a JOIN team.authors w USING (author_id);
CREATE TABLE team.article_topics (slug text PRIMARY KEY, topic text NOT NULL, confidence numeric);
CREATE TABLE team.article_summaries (slug text PRIMARY KEY, summary varchar(2000) NOT NULL,
                                     summarised_at timestamptz);
INSERT INTO team.authors VALUES (1, 'Ada'), (2, 'Grace');
INSERT INTO team.articles SELECT 'article-' || n, 1 + n % 2, 'Article ' || n,
                                 'The body of article ' || n || ' about refunds.'
  FROM generate_series(1, 8) n;
"""
TEAM_COLUMNS = {
    "team.article_topics": ["slug", "topic", "confidence"],
    "team.article_summaries": ["slug", "summary", "summarised_at"],
}
KEYS = [f"article-{n}" for n in range(1, 9)]

COMMON = """
model: claude-haiku-5-5
effort: low
max_tokens: 600
source:
  table: team.article_feed
  key: slug
  columns: [title, body, author]
prompt:
  instructions_file: instructions.md
  item_template: "{title} by {author}: {body}"
"""
TOPICS = """
name: article_topics
output:
  tool_name: record_topic
  schema:
    type: object
    additionalProperties: false
    required: [topic, confidence]
    properties:
      topic: {type: string, enum: [billing, shipping, other]}
      confidence: {type: number}
destination:
  table: team.article_topics
  key: slug
  columns: {topic: topic, confidence: confidence}
  delivery_columns: {}
  asset: {name: team.article_topics, uri: "postgres://appdb:5432/app/team/article_topics"}
"""
SUMMARIES = """
name: article_summaries
output: {type: text, max_chars: 2000}
destination:
  table: team.article_summaries
  key: slug
  columns: {summary: text}
  delivery_columns: {written_at: summarised_at}
  asset: {name: team.article_summaries, uri: "postgres://appdb:5432/app/team/article_summaries"}
"""


def _workload(folder, name: str, text: str, extra: str = ""):
    (folder / "instructions.md").write_text("Read the article and answer as asked. " * 20)
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(COMMON) + textwrap.dedent(text) + extra)
    return load_workload_file(path)


@pytest.fixture
def team(app_db, tmp_path, monkeypatch):
    app_db.execute(TEAM_TABLES)
    app_db.commit()
    folder = tmp_path / "team-workloads"  # outside the repository, as a deployment's own folder
    folder.mkdir()
    monkeypatch.setenv("AIRFLOW__NIGHTSHIFT__WORKLOADS_FOLDER", str(folder))
    return {"topics": _workload(folder, "article_topics", TOPICS),
            "summaries": _workload(folder, "article_summaries", SUMMARIES)}


def _queue(conn, workload, keys=KEYS) -> None:
    """The SQL function a team's own jobs call."""
    assert conn.execute("SELECT nightshift.enqueue(%s, %s)", (workload.name, list(keys))).fetchone()[0] == len(keys)
    conn.commit()


def _enqueue_with_the_cli(app_dsn, capsys, monkeypatch, workload, keys=KEYS) -> None:
    import io

    from nightshift.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(keys) + "\n"))
    code = main(["enqueue", "--workload", workload.name, "--keys-file", "-", "--dsn", app_dsn])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"{len(keys)} queued, 0 already pending" in out


def _columns(conn, table: str) -> list[str]:
    schema, name = table.split(".")
    return [r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                                       "AND table_name = %s ORDER BY ordinal_position", (schema, name))]


def _rows(conn, table: str) -> list[tuple]:
    return conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()  # noqa: S608 (the test's own table)


@pytest.mark.parametrize("which", ["topics", "summaries"])
def test_rows_land_in_the_teams_columns_only_on_both_paths_alike(app_db, app_dsn, emulator, team, which, capsys,
                                                                 monkeypatch):
    workload = team[which]
    table = workload.destination.table
    backend = emulator_backend(emulator)
    _enqueue_with_the_cli(app_dsn, capsys, monkeypatch, workload)
    night = run_night(app_db, backend, workload)
    assert night.summary.succeeded == 8, night.summary
    batched = _rows(app_db, table)
    assert len(batched) == 8 and all(value is not None for row in batched for value in row)
    if which == "summaries":  # a plain-text reply lands as text, as the emulator wrote it
        assert all(isinstance(row[1], str) and len(row[1]) > 20 and not row[1].startswith("{") for row in batched)
    provenance = app_db.execute(
        "SELECT count(*), count(DISTINCT model), min(prompt_version), count(request_id) FROM nightshift.deliveries "
        "WHERE destination = %s", (table,)).fetchone()
    assert provenance == (8, 1, workload.prompt_version, 8)  # what the table has no column for, the ledger keeps

    app_db.execute(f"UPDATE {table} SET {list(workload.destination.columns)[0]} = 'stale'")  # noqa: S608
    app_db.commit()
    _queue(app_db, workload)
    summary = run_streaming(app_db, backend, workload, claimer="stream:test")
    assert summary.succeeded == 8
    streamed = _rows(app_db, table)
    assert [row[:3 if which == "topics" else 2] for row in streamed] == \
        [row[:3 if which == "topics" else 2] for row in batched]  # the written-at time differs, nothing else
    assert _columns(app_db, table) == TEAM_COLUMNS[table]  # nothing was added to the team's table
    newest = app_db.execute("SELECT max(request_id) FROM app.llm_requests WHERE workload = %s",
                            (workload.name,)).fetchone()[0]
    assert app_db.execute("SELECT max(request_id) FROM nightshift.deliveries WHERE destination = %s",
                          (table,)).fetchone()[0] == newest


def test_an_older_requests_result_never_replaces_a_newer_one_without_a_request_id_column(app_db, emulator, team):
    """The queue order the upsert kept on ``request_id`` is kept in the ledger when the table has no such column."""
    workload = team["topics"]
    backend = emulator_backend(emulator)
    _queue(app_db, workload, ["article-1"])
    run_streaming(app_db, backend, workload, claimer="stream:first")
    # as if a newer request's result had landed meanwhile (a retry round's, say): its record and its row
    app_db.execute("UPDATE nightshift.deliveries SET request_id = request_id + 1000 WHERE source_key = 'article-1'")
    app_db.execute("UPDATE team.article_topics SET topic = 'kept'")
    app_db.commit()
    _queue(app_db, workload, ["article-1"])  # an older request than the recorded one
    assert run_streaming(app_db, backend, workload, claimer="stream:older").succeeded == 1
    assert app_db.execute("SELECT topic FROM team.article_topics").fetchone()[0] == "kept"


BREAKS = {
    "missing": ("ALTER TABLE team.article_topics DROP COLUMN confidence",
                'destination team.article_topics: column "confidence" does not exist — add it '
                "(ALTER TABLE team.article_topics ADD COLUMN confidence numeric)"),
    "mistyped": ("ALTER TABLE team.article_topics ALTER COLUMN confidence TYPE boolean USING NULL",
                 'destination team.article_topics: column "confidence" is bool, which cannot hold '
                 "destination.columns.confidence's value (numeric)"),
    "no unique key": ("ALTER TABLE team.article_topics DROP CONSTRAINT article_topics_pkey",
                      'key column "slug" has no primary key or unique constraint of its own'),
    "unfilled not null": ("ALTER TABLE team.article_topics ADD COLUMN reviewer text NOT NULL",
                          'column "reviewer" is NOT NULL with no default and nothing fills it'),
    "source column": ("DROP VIEW team.article_feed; CREATE VIEW team.article_feed AS SELECT a.slug, a.title, "
                      "a.body AS content, w.name AS author FROM team.articles a JOIN team.authors w USING (author_id)",
                      'source team.article_feed: column "body" does not exist'),
}


@pytest.mark.parametrize("broken", list(BREAKS))
@pytest.mark.parametrize("path", ["batch", "streaming"])
def test_a_table_that_does_not_fit_fails_before_any_call(app_db, emulator, team, broken, path):
    statement, message = BREAKS[broken]
    workload = team["topics"]
    app_db.execute(statement)
    app_db.commit()
    _queue(app_db, workload)
    with pytest.raises(ContractMismatch) as raised:
        if path == "batch":
            run_night(app_db, emulator_backend(emulator), workload)
        else:
            run_streaming(app_db, emulator_backend(emulator), workload, claimer="stream:test")
    assert message in str(raised.value)
    stats = emulator.stats()
    assert (stats["batches_created"], stats["requests_total"]) == (0, 0)
    app_db.rollback()
    assert app_db.execute("SELECT count(*) FROM app.llm_requests WHERE status = 'pending'").fetchone()[0] == 8


def test_a_mapped_delivery_column_the_table_lacks_is_named_with_both_fixes(app_db, emulator, tmp_path, team):
    workload = _workload(tmp_path, "article_topics", TOPICS.replace("delivery_columns: {}", "delivery_columns: "
                                                                    "{model: model, request_id: request_id}"))
    app_db.execute("ALTER TABLE team.article_topics ADD COLUMN request_id integer")
    app_db.commit()
    _queue(app_db, workload)
    with pytest.raises(ContractMismatch) as raised:
        run_night(app_db, emulator_backend(emulator), workload)
    assert str(raised.value).splitlines()[1:] == [
        '- destination team.article_topics: column "model" does not exist — add it (ALTER TABLE team.article_topics '
        "ADD COLUMN model text) or map model to null in destination.delivery_columns",
        '- destination team.article_topics: column "request_id" is int4, which cannot hold '
        "delivery_columns.request_id's value (bigint) — ALTER TABLE team.article_topics ALTER COLUMN request_id "
        "TYPE bigint, or map request_id to null in destination.delivery_columns",
    ]
    assert emulator.stats()["batches_created"] == 0


def test_a_text_column_shorter_than_the_replies_may_be_is_refused(app_db, emulator, tmp_path, team):
    workload = _workload(tmp_path, "article_summaries", SUMMARIES.replace("max_chars: 2000", "max_chars: 5000"))
    _queue(app_db, workload)
    with pytest.raises(ContractMismatch, match='column "summary" holds at most 2000 characters but output.max_chars '
                                               "is 5000"):
        run_night(app_db, emulator_backend(emulator), workload)
    assert emulator.stats()["batches_created"] == 0


def test_a_backfill_skips_what_the_ledger_says_this_prompt_version_produced(app_db, emulator, tmp_path):
    """The table has no prompt_version column: "already produced by this prompt version" is the ledger's."""
    from datetime import datetime, timezone

    app_db.execute(TEAM_TABLES + "ALTER TABLE team.articles ADD COLUMN created_at timestamptz NOT NULL "
                                 "DEFAULT '2026-03-01 12:00+00'; CREATE OR REPLACE VIEW team.article_feed AS "
                                 "SELECT a.slug, a.title, a.body, w.name AS author, a.created_at "
                                 "FROM team.articles a JOIN team.authors w USING (author_id);")
    app_db.commit()
    workload = _workload(tmp_path, "article_topics", TOPICS)
    workload = workload.model_copy(update={"source": workload.source.model_copy(
        update={"timestamp_column": "created_at"})})
    interval = (datetime(2026, 3, 1, tzinfo=timezone.utc), datetime(2026, 3, 2, tzinfo=timezone.utc))
    backend = emulator_backend(emulator)
    first = run_night(app_db, backend, workload, mode="interval", data_interval=interval, airflow_run_id="first")
    assert first.summary.succeeded == 8
    again = run_night(app_db, backend, workload, mode="interval", data_interval=interval, airflow_run_id="again")
    assert again.summary.requests == 0 and emulator.stats()["batches_created"] == 1
    revised = workload.model_copy(update={"max_tokens": workload.max_tokens + 50})
    redo = run_night(app_db, backend, revised, mode="interval", data_interval=interval, airflow_run_id="revised")
    assert redo.summary.succeeded == 8
    assert app_db.execute("SELECT DISTINCT prompt_version FROM nightshift.deliveries "
                          "WHERE destination = 'team.article_topics'").fetchall() == [(revised.prompt_version,)]


def test_parity_pairs_a_plain_text_tables_rows_by_the_ledger_and_compares_them_as_text(app_db, emulator, team):
    """No request_id column: the streaming rows a shadow run also answered are found by the ledger's records."""
    from nightshift.migration import parity
    from nightshift.migration.modes import set_mode

    workload = team["summaries"]
    backend = emulator_backend(emulator)
    _queue(app_db, workload)
    set_mode(app_db, workload, "shadow")
    run_streaming(app_db, backend, workload, claimer="stream")
    emulator.add_fault(kind="perturb", custom_id=r".*-q3")
    assert shadow_night(app_db, backend, workload).succeeded == 8
    report = parity.compare(app_db, workload)
    assert report.rows_compared == 8 and report.rows_agreeing == 7
    assert [d.similarity is not None and d.similarity < 1 for d in report.differences] == [True]
