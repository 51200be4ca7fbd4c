"""Bad input, end to end: each bad row or reply fails alone with a reason that names it, the rest lands.

Every night here is a real one (``tests.batch_night.run_night``: collect, submit, wait, land,
retry rounds, finalize against real Postgres and the emulator over HTTP), and its outcome is
checked in SQL: every request ``succeeded`` with exactly one destination row, or ``failed``
with a specific ``error_type`` and a message naming the row or the field; no destination row
twice, none for a failed request, the queue closed to match, and the good rows landed.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass

import psycopg
import pytest
import yaml
from psycopg import sql

from nightshift import paths
from nightshift.batch.submit import Caps
from nightshift.streaming import run_streaming
from nightshift.deployment import get_workload, load_workloads
from nightshift.workloads import WorkloadDefinitionError
from nightshift.workloads.definition import Workload
from nightshift.workloads.requests import build_params
from tests.batch_night import run_night
from tests.helpers import emulator_backend

pytestmark = pytest.mark.chaos

TICKETS = get_workload("ticket_classification")
LABELS = TICKETS.output.json_schema["properties"]["label"]["enum"]


@dataclass(frozen=True)
class Expect:
    """What one request must end as: ``succeeded``, or ``failed`` with this reason and message."""

    status: str
    error_type: str | None = None
    message: str | None = None  # a regular expression the error message must contain


OK = Expect("succeeded")


def assert_night(conn: psycopg.Connection, run_pk: int, workload: Workload, expected: dict[int, Expect]) -> None:
    """The night's promise, request by request (``expected`` by request_id), checked in SQL."""
    table = sql.Identifier(*workload.destination.table.split("."))
    key = sql.Identifier(workload.destination.key)
    items = {request_id: (status, error_type, message, source_key) for request_id, status, error_type, message, source_key
             in conn.execute("SELECT request_id, status, error_type, error_message, source_key FROM nightshift.items "
                             "WHERE run_pk = %s", (run_pk,))}
    assert set(items) == set(expected), "every request of the night has exactly one ledger item"
    for request_id, want in expected.items():
        status, error_type, message, source_key = items[request_id]
        where = f"request {request_id} (key {source_key[:40]!r})"
        assert status == want.status, f"{where}: {status} {error_type}: {message}"
        if want.status == "failed":
            assert error_type == want.error_type, f"{where}: {error_type}: {message}"
            assert message and re.search(want.message, message), f"{where}: {message!r} !~ {want.message!r}"
    # Destination: exactly one row per source key that succeeded, none for keys that only failed.
    dest = conn.execute(sql.SQL("SELECT {key}::text, count(*) OVER (PARTITION BY {key}), request_id, label FROM {table}")
                        .format(key=key, table=table)).fetchall()
    assert all(n == 1 for _, n, _, _ in dest), "a destination row was written twice"
    succeeded_keys = {v[3] for v in items.values() if v[0] == "succeeded"}
    assert {k for k, _, _, _ in dest} == succeeded_keys
    assert all(label in LABELS for *_, label in dest), "a label outside the approved set was written"
    # The request queue, what the streaming path's users query, agrees with the ledger.
    queue = dict(((rid, (status, error)) for rid, status, error in conn.execute(
        "SELECT request_id, status, error FROM app.llm_requests WHERE request_id = ANY(%s)", (list(expected),))))
    for request_id, (status, error_type, message, _) in items.items():
        if status == "succeeded":
            assert queue[request_id] == ("done", None), request_id
        else:
            assert queue[request_id][0] == "failed" and queue[request_id][1] == f"{error_type}: {message}", request_id


def insert_tickets(conn: psycopg.Connection, bodies: dict[int, str | None]) -> dict[int, int]:
    """Tickets with these bodies, one queued request each; returns request_id by ticket_id."""
    with conn.cursor() as cur:
        for ticket_id, body in bodies.items():
            cur.execute("INSERT INTO app.support_tickets (ticket_id, customer_email, subject, body) "
                        "VALUES (%s, %s, %s, %s)", (ticket_id, f"c{ticket_id}@example.com", f"Ticket {ticket_id}", body))
    return {t: queue_request(conn, TICKETS.name, str(t)) for t in bodies}


def queue_request(conn: psycopg.Connection, workload: str, source_key: str) -> int:
    request_id = conn.execute("INSERT INTO app.llm_requests (workload, source_key) VALUES (%s, %s) "
                              "RETURNING request_id", (workload, source_key)).fetchone()[0]
    conn.commit()
    return request_id


GOOD_BODIES = {
    1: "I was charged twice for order 1001, please refund one of the charges.",
    2: "The app crashes every time I open my wishlist since the last update.",
    3: "Could you add a dark mode to the mobile app? Would love that feature.",
    4: "My parcel has been out for delivery for five days now.",
    5: "I cannot log in: the password reset link expires immediately.",
    6: "Just wanted to say the new store layout looks great.",
}


# Bad source rows -------------------------------------------------------------------------------

def test_bad_request_rows_fail_alone_naming_the_row_and_the_night_goes_on(app_db, emulator):
    # ~3.2 million characters: over claude-haiku-5-5's 1,000,000-token window (13 tokens per 40 characters)
    over_context = "refund please " * 230_000
    requests = insert_tickets(app_db, {
        **GOOD_BODIES,
        7: None,
        8: "",
        9: " \n\t ",
        10: "Refund\x01 please\x07 \x1b[2J now\x7f: charged twice",  # control characters: stripped, not fatal
        11: "Facture doublée 💳 — مرحبا — ﬁ e\u0301 ✓ \u202eRTL override\u202c",  # odd but valid Unicode
        12: over_context,
    })
    twice = queue_request(app_db, TICKETS.name, "2")  # a second request for one ticket: answered once (#19)
    not_a_number = queue_request(app_db, TICKETS.name, '=HYPERLINK("http://evil.example","x")')
    overflows = queue_request(app_db, TICKETS.name, "99999999999999999999999")
    missing = queue_request(app_db, TICKETS.name, "404404")

    night = run_night(app_db, emulator_backend(emulator), TICKETS)

    expected = {requests[t]: OK for t in (1, 2, 3, 4, 5, 6, 10, 11)}
    expected |= {
        requests[7]: Expect("failed", "invalid_input", r"app\.support_tickets\.ticket_id=7: column 'body' is NULL"),
        requests[8]: Expect("failed", "invalid_input", r"ticket_id=8: column 'body' is empty"),
        requests[9]: Expect("failed", "invalid_input", r"ticket_id=9: column 'body' is empty"),
        requests[12]: Expect("failed", "invalid_request", r"prompt is too long: \d+ tokens > 1000000"),
        not_a_number: Expect("failed", "invalid_input",
                             rf"source key '=HYPERLINK.* of request {not_a_number} is not a valid bigint "
                             r"\(app\.support_tickets\.ticket_id\)"),
        overflows: Expect("failed", "invalid_input", r"'99999999999999999999999' .* is not a valid bigint"),
        missing: Expect("failed", "invalid_input", r"app\.support_tickets\.ticket_id=404404 does not exist"),
    }
    assert_night(app_db, night.run.run_pk, TICKETS, expected)
    assert night.summary.status == "succeeded"
    assert night.summary.failed == {"invalid_input": 6, "invalid_request": 1}
    # Rows that fail validation never reach the API, nor does a key's second request: only the 9 others
    # were sent (and paid for).
    assert emulator.stats()["batch_requests_total"] == 9
    # The first of two requests for one ticket wrote its row; the second closed with it.
    writer = app_db.execute("SELECT request_id FROM app.ticket_classifications WHERE ticket_id = 2").fetchone()
    assert writer == (requests[2],)
    assert app_db.execute("SELECT status, answered_by FROM app.llm_requests WHERE request_id = %s",
                          (twice,)).fetchone() == ("done", requests[2])


DOCS_TABLES = """
CREATE TABLE app.chaos_documents (doc_id bigint PRIMARY KEY, title text NOT NULL, body text, attrs json);
CREATE TABLE app.chaos_document_labels (
    doc_id bigint PRIMARY KEY REFERENCES app.chaos_documents (doc_id),
    label text NOT NULL, rationale text NOT NULL, model text NOT NULL, prompt_version text NOT NULL,
    request_id bigint, labelled_at timestamptz NOT NULL DEFAULT now());
"""


def documents_workload() -> Workload:
    """A workload over a source with a ``json`` column: Postgres ``json`` (unlike ``text`` and
    ``jsonb``) stores ``\\u0000`` and unpaired ``\\ud800`` escapes, and psycopg hands them over as is."""
    return Workload.model_validate({
        "name": "chaos_documents", "model": TICKETS.model, "max_tokens": TICKETS.max_tokens, "effort": TICKETS.effort,
        "instructions": TICKETS.instructions,
        "source": {"table": "app.chaos_documents", "key": "doc_id", "columns": ["title", "body", "attrs"],
                   "required_columns": ["title"]},
        "prompt": {"instructions_file": "prompts/ticket_classification.md",
                   "item_template": "Document {doc_id}: {title}\n{body}\nAttributes: {attrs}"},
        "output": TICKETS.output.model_dump(by_alias=True),
        "destination": {"table": "app.chaos_document_labels", "key": "doc_id",
                        "columns": {"label": "label", "rationale": "rationale"}, "written_at_column": "labelled_at",
                        "asset": {"name": "app.chaos_document_labels", "uri": "postgres://appdb/app/chaos_document_labels"}},
    })


def test_json_attributes_with_control_characters_surrogates_or_huge_fail_alone(app_db, emulator):
    app_db.execute(DOCS_TABLES)
    workload = documents_workload()
    huge = {"notes": "x" * 3_200_000}  # ~1,040,000 tokens: over the 1M context window, under the body cap
    bigger = {"notes": "y" * 9_000_000}  # over the 8 MB body cap set below: never sent at all
    attrs = {
        1: '{"colour": "red", "tags": ["a", "b"]}',
        2: '{"note": "before\\u0000after\\u0007\\u001b[31m"}',  # NUL and control characters, escaped in JSON
        3: '{"note": "half a pair: \\ud800 here"}',  # an unpaired surrogate: no UTF-8 can carry it
        4: '{"emoji": "\\ud83d\\ude00", "accents": "e\\u0301"}',  # a proper pair and a combining accent
        5: None,
        6: json.dumps(huge),
        7: json.dumps(bigger),
        8: '"\\ud800"',  # a bare JSON string holding the lone surrogate
    }
    requests = {}
    for doc_id, value in attrs.items():
        app_db.execute("INSERT INTO app.chaos_documents (doc_id, title, body, attrs) VALUES (%s, %s, %s, %s::json)",
                       (doc_id, f"Document {doc_id}", "A billing question about an invoice.", value))
        requests[doc_id] = queue_request(app_db, workload.name, str(doc_id))

    night = run_night(app_db, emulator_backend(emulator), workload, caps=Caps(max_bytes=8_000_000))

    assert_night(app_db, night.run.run_pk, workload, {
        requests[1]: OK, requests[2]: OK, requests[4]: OK, requests[5]: OK,
        requests[3]: Expect("failed", "invalid_input", r"app\.chaos_documents\.doc_id=3: column 'attrs' is not valid "
                                                       r"Unicode \(a lone surrogate U\+D800 at character \d+\)"),
        requests[8]: Expect("failed", "invalid_input", r"doc_id=8: column 'attrs' is not valid Unicode"),
        requests[6]: Expect("failed", "invalid_request", r"prompt is too long"),
        requests[7]: Expect("failed", "invalid_input", r"request r\d+-q\d+ alone is \d+ bytes, over the batch body cap "
                                                       r"of 8000000 bytes"),
    })
    assert emulator.stats()["batch_requests_total"] == 5


def test_a_json_attribute_reaches_the_prompt_as_json_without_control_characters():
    workload = documents_workload()
    row = {"doc_id": 2, "title": "T", "body": None, "attrs": {"note": "a\x00b\x07", "n": [1, None]}}
    text = build_params(workload, row)["messages"][0]["content"]
    assert 'Attributes: {"note": "a\\u0000b\\u0007", "n": [1, null]}' in text
    assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text)
    assert "\n(not given)\n" in text


# Bad replies -----------------------------------------------------------------------------------

REPLY_FAULTS = {
    # ticket: (fault, expected outcome)
    1: ({"kind": "perturb", "mode": "not_json"},
        Expect("failed", "invalid_output", r"no 'record_ticket_classification' tool call and its text is not JSON")),
    2: ({"kind": "perturb", "mode": "schema_violation"},
        Expect("failed", "invalid_output", r"violates the output schema .*'label' is a required property")),
    3: ({"kind": "perturb", "mode": "unapproved_value"},
        Expect("failed", "invalid_output", r"violates the output schema at label: 'urgent_vip .*' is not one of")),
    4: ({"kind": "perturb", "mode": "max_tokens"},
        Expect("failed", "invalid_output",
               rf"stopped at max_tokens \({TICKETS.max_tokens}\) before it was complete; thinking used \d+ of them")),
    5: ({"kind": "perturb", "mode": "nul_character"},
        Expect("failed", "invalid_output", r"reply has a NUL character at rationale .*cannot store")),
    6: ({"kind": "perturb", "mode": "lone_surrogate"},
        Expect("failed", "invalid_output", r"reply has a lone surrogate U\+D800 at rationale")),
    7: ({"kind": "item_error", "error_type": "invalid_request_error", "message": "messages.0: bad things"},
        Expect("failed", "invalid_request", r"messages\.0: bad things")),
    8: ({"kind": "perturb", "mode": "valid"}, OK),  # a different reply, still valid: it lands
    9: ({"kind": "item_error", "error_type": "overloaded_error", "count": 1}, OK),  # retried in round 1, lands
}


def test_bad_replies_fail_alone_and_never_write_an_unapproved_label(app_db, emulator):
    bodies = {t: f"{GOOD_BODIES[1 + t % 6]} (ticket {t})" for t in range(1, 15)}
    requests = insert_tickets(app_db, bodies)
    for ticket, (fault, _) in REPLY_FAULTS.items():
        emulator.add_fault(**fault, custom_id=rf"r\d+-q{requests[ticket]}")

    night = run_night(app_db, emulator_backend(emulator), TICKETS)

    expected = {requests[t]: REPLY_FAULTS[t][1] if t in REPLY_FAULTS else OK for t in bodies}
    assert_night(app_db, night.run.run_pk, TICKETS, expected)
    assert night.submitted_rounds == [0, 1]
    assert night.summary.failed == {"invalid_output": 6, "invalid_request": 1}
    injected = app_db.execute("SELECT count(*) FROM app.ticket_classifications WHERE label LIKE '%%urgent%%' "
                              "OR rationale LIKE '%%ignore all previous%%'").fetchone()[0]
    assert injected == 0
    # Replies that failed validation were still billed: their tokens are on the ledger, priced.
    billed = app_db.execute("SELECT count(*) FROM nightshift.items WHERE run_pk = %s AND error_type = "
                            "'invalid_output' AND output_tokens > 0 AND cost_usd > 0", (night.run.run_pk,)).fetchone()[0]
    assert billed == 6


def test_the_streaming_path_refuses_the_same_bad_replies(app_db, emulator):
    """The old path shares the reply validation: an injected label or unstorable text fails that request only."""
    requests = insert_tickets(app_db, {t: GOOD_BODIES[t] for t in (1, 2, 3, 4)})
    not_a_key = queue_request(app_db, TICKETS.name, "=1+2")  # must not fail the claim's other requests
    modes = {1: "unapproved_value", 2: "nul_character", 3: "lone_surrogate"}
    for ticket, mode in modes.items():
        row = {"ticket_id": ticket, "subject": f"Ticket {ticket}", "body": GOOD_BODIES[ticket], "customer_tier": "standard"}
        emulator.add_fault(kind="perturb", mode=mode, params_hash=emulator.params_hash(build_params(TICKETS, row)))

    summary = run_streaming(app_db, emulator_backend(emulator), TICKETS, claimer="stream")

    assert summary.succeeded == 1 and dict(summary.failed) == {"invalid_output": 3, "invalid_input": 1}
    errors = dict(app_db.execute("SELECT request_id, error FROM app.llm_requests WHERE status = 'failed'").fetchall())
    assert re.search(r"ticket_id=1\).*'urgent_vip .*' is not one of", errors[requests[1]])
    assert "NUL character at rationale" in errors[requests[2]]
    assert "lone surrogate U+D800 at rationale" in errors[requests[3]]
    assert re.search(r"ticket_id==1\+2\): source row does not exist", errors[not_a_key])
    rows = app_db.execute("SELECT ticket_id, label FROM app.ticket_classifications").fetchall()
    assert [t for t, _ in rows] == [4] and rows[0][1] in LABELS


# Bad workload definitions ------------------------------------------------------------------------

@pytest.fixture
def workload_dir(tmp_path):
    target = tmp_path / "workloads"
    shutil.copytree((paths.PROJECT_ROOT / "workloads"), target)
    return target


def edit(path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


MISSING = [
    ("source", lambda d: d.pop("source"), "field source: Field required"),
    ("source.key", lambda d: d["source"].pop("key"), "field source.key: Field required"),
    ("destination.table", lambda d: d["destination"].pop("table"), "field destination.table: Field required"),
    ("output.schema", lambda d: d["output"].pop("schema"),
     "field output: a json output needs schema (or set type: text for a plain-text answer)"),
    ("prompt.item_template", lambda d: d["prompt"].pop("item_template"), "field prompt.item_template: Field required"),
    ("max_tokens", lambda d: d.pop("max_tokens"), "field max_tokens: Field required"),
    ("destination.asset.uri", lambda d: d["destination"]["asset"].pop("uri"), "field destination.asset.uri"),
    ("an optional output field mapped to a column",
     lambda d: d["output"]["schema"].update(required=["label"]),
     "destination.columns.rationale maps output field 'rationale', which the output schema does not require"),
    ("an unknown model", lambda d: d.update(model="claude-imaginary-9"),
     "field model: model 'claude-imaginary-9' is not in Nightshift's model table"),
]


@pytest.mark.parametrize(("change", "message"), [(c, m) for _, c, m in MISSING], ids=[n for n, _, _ in MISSING])
def test_a_definition_missing_a_field_names_the_workload_file_and_field(workload_dir, change, message):
    edit(workload_dir / "ticket_classification.yaml", change)
    with pytest.raises(WorkloadDefinitionError) as raised:
        load_workloads(workload_dir)
    assert f"workload 'ticket_classification' ({workload_dir / 'ticket_classification.yaml'})" in str(raised.value)
    assert message in str(raised.value)


def test_in_a_deployment_one_bad_definition_sets_only_itself_aside(workload_dir):
    edit(workload_dir / "ticket_classification.yaml", lambda d: d.update(model="claude-imaginary-9"))
    shutil.copy(workload_dir / "product_enrichment.yaml", workload_dir / "zz_copy.yaml")  # a name used twice
    (workload_dir / "broken.yaml").write_text("name: [unclosed\n")
    errors: dict[str, WorkloadDefinitionError] = {}
    loaded = load_workloads(workload_dir, errors=errors)
    assert set(loaded) == {"product_enrichment"}  # the copy is set aside by its own file name
    assert set(errors) == {"ticket_classification", "zz_copy", "broken"}
    assert "field model" in str(errors["ticket_classification"])
    assert "must be named product_enrichment.yaml" in str(errors["zz_copy"])
    (workload_dir / "zz_copy.yaml").unlink()
    errors.clear()
    assert set(load_workloads(workload_dir, errors=errors)) == {"product_enrichment"}
    assert set(errors) == {"ticket_classification", "broken"}


@pytest.mark.airflow
def test_a_broken_definition_fails_its_own_dag_and_the_other_nights_run(
        airflow_db, app_db, anthropic_conn, workload_dir, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    from nightshift import deployment
    from nightshift.workloads.registry import load_deployment
    from tests.helpers import seed

    edit(workload_dir / "product_enrichment.yaml", lambda d: (d.update(name="chaos_broken"),
                                                               d["destination"].update(key="product id")))
    (workload_dir / "product_enrichment.yaml").rename(workload_dir / "chaos_broken.yaml")
    monkeypatch.setenv("AIRFLOW__NIGHTSHIFT__WORKLOADS_FOLDER", str(workload_dir))
    load_deployment.cache_clear()
    try:
        bag = DagBag(dag_folder=str(paths.PROJECT_ROOT / "dags" / "nightshift_batch.py"))
        assert not bag.import_errors
        broken = bag.get_dag("nightshift_batch_chaos_broken")
        assert [t.task_id for t in broken.tasks] == ["definition_error"]
        assert "field destination.key" in broken.description
        with pytest.raises(WorkloadDefinitionError, match="field destination.key"):
            deployment.get_workload("chaos_broken")

        assert str(broken.test().state) == "failed"

        seed(app_db, tickets=6)
        good = bag.get_dag("nightshift_batch_ticket_classification").test(run_conf={"poll_interval_seconds": 0.2})
        assert str(good.state) == "success"
        assert app_db.execute("SELECT count(*) FROM app.ticket_classifications").fetchone()[0] == 6
    finally:
        load_deployment.cache_clear()
