"""The destination contract (#19): delivery columns, plain-text outputs, and which column types hold
which output values. The catalog side runs against Postgres in tests/integration/test_team_tables.py."""

from __future__ import annotations

import re

import pytest

from nightshift.contract import contract_problems, schema_column_types
from nightshift.deployment import get_workload
from nightshift.destination import destination_columns, destination_row, upsert_statement
from nightshift.ledger.catalog import Column, Table
from nightshift.workloads.definition import Workload
from nightshift.workloads.replies import InvalidOutput, extract_output
from nightshift.workloads.requests import build_params
from nightshift.workloads.shape import Delivery


@pytest.mark.parametrize(("spec", "expected", "holds", "refuses"), [
    ({"type": "string"}, "text", {"text", "varchar", "citext"}, {"int8", "jsonb", "bool"}),
    ({"type": "string", "enum": ["a", "b"]}, "text", {"text", "varchar"}, {"int4"}),
    ({"enum": ["a", "b"]}, "text", {"text"}, {"jsonb"}),
    ({"type": ["string", "null"]}, "text", {"text"}, {"jsonb"}),
    ({"type": "integer"}, "bigint", {"int2", "int4", "int8", "numeric", "float8"}, {"text", "bool"}),
    ({"type": "number"}, "numeric", {"numeric", "float4", "float8"}, {"int8", "text"}),
    ({"type": "boolean"}, "boolean", {"bool"}, {"text", "int4"}),
    ({"type": "object"}, "jsonb", {"json", "jsonb"}, {"text"}),
    ({"type": "array", "items": {"type": "string"}}, "jsonb", {"json", "jsonb"}, {"text"}),
    ({}, "jsonb", {"jsonb"}, {"text"}),
    ({"type": ["string", "integer"]}, "jsonb", {"jsonb"}, {"text", "int8"}),
])
def test_each_schema_type_maps_to_the_column_types_that_hold_it(spec, expected, holds, refuses):
    name, allowed = schema_column_types(spec)
    assert name == expected
    assert holds <= allowed and not (refuses & allowed)


def column(name, type_, *, not_null=False, default=False, max_length=None, enum=False) -> Column:
    return Column(name, type_, enum, max_length, not_null, default)


def tickets_table(**changes: Column | None) -> Table:
    columns = {c.name: c for c in [
        column("ticket_id", "int8", not_null=True), column("label", "text", not_null=True), column("rationale", "text"),
        column("model", "text"), column("prompt_version", "text"), column("request_id", "int8"),
        column("classified_at", "timestamptz", default=True)]}
    for name, changed in changes.items():
        if changed is None:
            columns.pop(name)
        else:
            columns[name] = changed
    return Table("app.ticket_classifications", columns, [("ticket_id",)])


SOURCE = Table("app.support_tickets", {c: column(c, "text") for c in
                                       ["ticket_id", "subject", "body", "customer_tier", "created_at"]}, [])


def test_the_shipped_workload_fits_its_tables():
    assert contract_problems(get_workload("ticket_classification"), SOURCE, tickets_table()) == []


@pytest.mark.parametrize(("changes", "expected"), [
    ({"model": None}, 'column "model" does not exist — add it (ALTER TABLE app.ticket_classifications ADD COLUMN '
                      "model text) or map model to null in destination.delivery_columns"),
    ({"label": column("label", "int4")}, 'column "label" is int4, which cannot hold destination.columns.label'),
    ({"label": column("label", "label_kind", enum=True)}, None),  # an enum of labels holds a string
    ({"rationale": column("rationale", "varchar", max_length=100)},
     'column "rationale" holds at most 100 characters but maxLength in output.schema.properties.rationale is 400'),
    ({"rationale": column("rationale", "varchar", max_length=400)}, None),
    ({"reviewer": column("reviewer", "text", not_null=True)}, 'column "reviewer" is NOT NULL with no default'),
    ({"reviewer": column("reviewer", "text", not_null=True, default=True)}, None),
    ({"request_id": column("request_id", "int4")}, 'column "request_id" is int4, which cannot hold '
                                                   "delivery_columns.request_id's value (bigint)"),
])
def test_each_mismatch_is_named_with_its_fix(changes, expected):
    problems = contract_problems(get_workload("ticket_classification"), SOURCE, tickets_table(**changes))
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0], problems


def test_a_missing_table_or_a_key_without_a_unique_constraint_is_named():
    workload = get_workload("ticket_classification")
    assert contract_problems(workload, None, None) == [
        "source app.support_tickets: the table does not exist — create it, or correct source.table",
        "destination app.ticket_classifications: the table does not exist — create it, or correct destination.table"]
    no_key = Table("app.ticket_classifications", tickets_table().columns, [("ticket_id", "label")])
    assert "has no primary key or unique constraint of its own" in contract_problems(workload, SOURCE, no_key)[0]


def _variant(name: str, output: dict | None = None, **destination) -> Workload:
    raw = get_workload(name).model_dump(by_alias=True, exclude_none=True)
    raw["destination"].pop("written_at_column", None)
    raw["destination"].update(destination)
    if output is not None:
        raw["output"] = output
    return Workload.model_validate(raw)


def test_delivery_columns_default_to_todays_and_map_each_column_or_none():
    shipped = get_workload("ticket_classification")
    assert shipped.destination.delivery.mapped() == {"model": "model", "prompt_version": "prompt_version",
                                                     "request_id": "request_id", "written_at": "classified_at"}
    bare = _variant("ticket_classification", delivery_columns={})
    assert bare.destination.delivery.mapped() == {}
    assert destination_columns(bare) == ["ticket_id", "label", "rationale"]
    renamed = _variant("ticket_classification", delivery_columns={"request_id": "queue_id", "written_at": "at"})
    assert destination_columns(renamed) == ["ticket_id", "label", "rationale", "queue_id"]
    assert "WHERE t.\"queue_id\" IS NULL" in upsert_statement(renamed).as_string(None)
    assert " WHERE " not in upsert_statement(bare).as_string(None)  # the ledger's record orders it instead


def test_delivery_columns_are_checked_at_load():
    with pytest.raises(ValueError, match="delivery_columns.model names column 'label', which is already "
                                         "destination.columns.label"):
        _variant("ticket_classification", delivery_columns={"model": "label"})
    with pytest.raises(ValueError, match="written_at_column and delivery_columns.written_at both given"):
        _variant("ticket_classification", delivery_columns={"written_at": "a"}, written_at_column="b")


def test_the_shipped_prompt_versions_are_unchanged():
    """Recorded on every destination row: a change would make backfills redo every row."""
    assert get_workload("ticket_classification").prompt_version == "v-04c34b4b4234"
    assert get_workload("product_enrichment").prompt_version == "v-aaab85c134fe"


TEXT = {"type": "text", "max_chars": 50}


def test_a_text_output_asks_for_no_schema_and_lands_the_replys_text():
    summary = _variant("ticket_classification", TEXT, columns={"summary": "text"})
    assert summary.output.delivery is Delivery.TEXT
    params = build_params(summary, {"ticket_id": 1, "subject": "s", "body": "b", "customer_tier": "free"})
    assert "tools" not in params and "tool_choice" not in params
    assert "format" not in params.get("output_config", {}) and params["output_config"]["effort"] == "low"
    reply = {"stop_reason": "end_turn", "content": [{"type": "thinking", "thinking": "", "signature": "x"},
                                                    {"type": "text", "text": "A short summary."}]}
    assert extract_output(summary, reply) == {"text": "A short summary."}
    for content, error in ([], "reply has no text"), ([{"type": "text", "text": "x" * 51}], "over output.max_chars"), \
            ([{"type": "text", "text": "nul \x00"}], "NUL character"):
        with pytest.raises(InvalidOutput, match=error):
            extract_output(summary, {"stop_reason": "end_turn", "content": content})
    assert summary.prompt_version != _variant("ticket_classification", {"type": "text"},
                                              columns={"summary": "text"}).prompt_version


@pytest.mark.parametrize(("output", "columns", "error"), [
    ({"type": "text", "schema": {"type": "object"}}, {"summary": "text"}, "a text output takes no schema"),
    ({"type": "text", "tool_name": "t"}, {"summary": "text"}, "a text output takes no tool_name"),
    (TEXT, {"summary": "summary"}, "destination.columns must map exactly one column to 'text'"),
    (TEXT, {"a": "text", "b": "text"}, "destination.columns must map exactly one column to 'text'"),
    ({"tool_name": "t", "schema": {"type": "string"}}, {"a": "b"}, "for a plain-text answer use output: {type: text}"),
    ({"schema": {"type": "object"}}, {"a": "b"}, "a json output needs tool_name"),
])
def test_a_text_output_is_checked_at_load(output, columns, error):
    with pytest.raises(ValueError, match=error.replace("{", r"\{").replace("(", r"\(")):
        _variant("ticket_classification", output, columns=columns)


def test_parity_compares_a_text_output_by_similarity():
    from nightshift.migration.parity import is_free_text

    summary = _variant("ticket_classification", TEXT, columns={"summary": "text"})
    assert is_free_text(summary, "text")
    assert not is_free_text(get_workload("ticket_classification"), "label")  # an enum: compared exactly


def with_source_columns(workload: Workload, source_columns: dict[str, str],
                        columns: list[str] | None = None) -> Workload:
    """The workload revalidated with destination.source_columns (and source.columns) changed."""
    raw = workload.model_dump(by_alias=True)
    raw["destination"]["source_columns"] = source_columns
    if columns is not None:
        raw["source"]["columns"] = columns
    return Workload.model_validate(raw)


@pytest.mark.parametrize(("source_columns", "expected"), [
    ({"tier": "customer_tier"}, None),
    ({"ticket": "ticket_id"}, None),  # the key may be copied too
    ({"tier": "region"}, "destination.source_columns.tier copies source column 'region', which is not "
                         "source.key or in source.columns"),
    ({"label": "customer_tier"}, "source_columns.label names column 'label', which is already "
                                 "destination.columns.label"),
    ({"ticket_id": "customer_tier"},
     "source_columns.ticket_id names column 'ticket_id', which is already the key"),
    ({"Tier": "customer_tier"}, "'Tier' is not a plain lower-case column name"),
])
def test_source_columns_are_checked_at_load(source_columns, expected):
    workload = get_workload("ticket_classification")
    if expected is None:
        assert with_source_columns(workload, source_columns).destination.source_columns == source_columns
    else:
        with pytest.raises(ValueError, match=re.escape(expected)):
            with_source_columns(workload, source_columns)


def test_a_delivery_column_may_not_take_a_source_columns_column():
    raw = get_workload("ticket_classification").model_dump(by_alias=True)
    raw["destination"]["source_columns"] = {"model": "customer_tier"}
    with pytest.raises(ValueError, match="delivery_columns.model names column 'model', which is already "
                                         "source_columns.model"):
        Workload.model_validate(raw)


@pytest.mark.parametrize(("source_type", "dest_column", "expected"), [
    ("text", column("tier", "varchar", max_length=20), None),
    ("text", column("tier", "tier_kind", enum=True), None),
    ("uuid", column("tier", "uuid"), None),
    ("int4", column("tier", "int8"), None),
    ("int8", column("tier", "numeric"), None),
    ("uuid", column("tier", "int8"), 'column "tier" is int8, which cannot hold '
                                     "source_columns.tier's value (uuid) — ALTER TABLE "
                                     "app.ticket_classifications ALTER COLUMN tier TYPE uuid"),
    ("numeric", column("tier", "int8"), 'column "tier" is int8, which cannot hold source_columns.tier'),
    ("text", None, 'column "tier" does not exist — add it (ALTER TABLE app.ticket_classifications '
                   "ADD COLUMN tier text) or copy another column in destination.source_columns"),
])
def test_a_source_column_lands_only_in_a_column_of_a_type_that_holds_it(source_type, dest_column, expected):
    workload = with_source_columns(get_workload("ticket_classification"), {"tier": "customer_tier"})
    source = Table(SOURCE.name, {**SOURCE.columns, "customer_tier": column("customer_tier", source_type)}, [])
    changes = {"tier": dest_column} if dest_column else {}
    problems = contract_problems(workload, source, tickets_table(**changes))
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0], problems


def test_a_not_null_column_filled_from_the_source_is_not_reported_unfilled():
    workload = with_source_columns(get_workload("ticket_classification"), {"tier": "customer_tier"})
    table = tickets_table(tier=column("tier", "text", not_null=True))
    assert contract_problems(workload, SOURCE, table) == []
    unfilled = contract_problems(get_workload("ticket_classification"), SOURCE, table)
    assert 'column "tier" is NOT NULL' in unfilled[0]


def test_copied_source_values_take_their_place_in_the_row_and_the_upsert():
    workload = with_source_columns(get_workload("ticket_classification"), {"tier": "customer_tier"})
    assert destination_columns(workload)[:4] == ["ticket_id", "label", "rationale", "tier"]
    row = destination_row(workload, 7, {"label": "billing", "rationale": "r"}, model="m", request_id=3,
                          source_row={"ticket_id": 7, "customer_tier": "gold"})
    assert row == (7, "billing", "r", "gold", "m", workload.prompt_version, 3)
    assert '"tier" = EXCLUDED."tier"' in upsert_statement(workload).as_string(None)
