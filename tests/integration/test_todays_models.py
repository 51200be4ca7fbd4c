"""Nightshift on today's models, against the strict emulator: the request each model accepts, the
preflight that stops a night before it pays, and costs as the invoice reads them."""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from nightshift.batch.preflight import PreflightRefused
from nightshift.costs import Usage, price_table
from nightshift.model_table import model_table
from nightshift.deployment import get_workload
from nightshift.workloads.shape import Delivery
from tests.batch_night import run_night
from tests.helpers import emulator_backend, seed

TICKETS = get_workload("ticket_classification")  # claude-haiku-5-5, effort low
PRODUCTS = get_workload("product_enrichment")  # claude-sonnet-5-5, effort low


def on_model(workload, model: str, **changes):
    """The same workload definition on another model (``model_copy`` re-checks nothing: the shape is
    worked out from the model table when the request is built, as in a run)."""
    output = workload.output.model_copy(update={"delivery": changes.pop("delivery", workload.output.delivery)})
    return workload.model_copy(update={"model": model, "output": output, **changes})


def requeue(conn, workload) -> None:
    conn.execute("UPDATE app.llm_requests SET status = 'pending', claimed_by = NULL, claimed_at = NULL, "
                 "completed_at = NULL, error = NULL WHERE workload = %s", (workload,))
    conn.execute(f"TRUNCATE {TICKETS.destination.table}")  # noqa: S608 - a constant of the workload
    conn.commit()


def labels(conn) -> list[tuple]:
    return conn.execute("SELECT ticket_id, label, rationale FROM app.ticket_classifications ORDER BY ticket_id").fetchall()


def test_one_workload_definition_lands_the_same_rows_on_every_model(app_db, emulator):
    seed(app_db, tickets=12)
    nights = {
        "claude-haiku-4-5 (forced tool)": on_model(TICKETS, "claude-haiku-4-5", effort=None,
                                                    delivery=Delivery.FORCED_TOOL),
        "claude-haiku-5-5 (structured outputs)": TICKETS,
        "claude-sonnet-5-5 (structured outputs)": on_model(TICKETS, "claude-sonnet-5-5"),
        "claude-opus-5-5 (thinking always on)": on_model(TICKETS, "claude-opus-5-5"),
    }
    landed = {}
    for index, (name, workload) in enumerate(nights.items()):
        if index:
            requeue(app_db, TICKETS.name)
        night = run_night(app_db, emulator_backend(emulator), workload, airflow_run_id=f"manual__{index}")
        assert night.summary.succeeded == 12 and not night.summary.failed, name
        landed[name] = labels(app_db)
        models = {m for (m,) in app_db.execute("SELECT DISTINCT model FROM app.ticket_classifications")}
        assert models == {workload.model}, name
    first = next(iter(landed.values()))
    assert len(first) == 12 and all(rows == first for rows in landed.values())
    shapes = {name: row[0] for name, row in zip(nights, app_db.execute(
        "SELECT details -> 'request_shape' ->> 'delivery' FROM nightshift.runs ORDER BY run_pk"))}
    assert list(shapes.values()) == ["forced_tool", "json_schema", "json_schema", "json_schema"]


@pytest.mark.parametrize("overrides, field", [
    ({"tools": [{"name": "record_ticket_classification", "input_schema": {"type": "object"}}],
      "tool_choice": {"type": "tool", "name": "record_ticket_classification"}, "output_config": None}, "tool_choice"),
    ({"temperature": 0.2}, "temperature"),
], ids=["forced-tool-on-sonnet-5-5", "sampling-parameter"])
def test_params_the_api_refuses_fail_at_preflight_before_any_batch(app_db, emulator, overrides, field):
    workload = on_model(TICKETS, "claude-sonnet-5-5", request_overrides=overrides)
    seed(app_db, tickets=6)
    with pytest.raises(PreflightRefused) as refused:
        run_night(app_db, emulator_backend(emulator), workload)
    assert refused.value.field == field and refused.value.workload == TICKETS.name
    assert emulator.stats()["batches_created"] == 0
    assert emulator.endpoint_calls("count_tokens") >= 1
    failed = app_db.execute("SELECT status, error_type, error_message FROM nightshift.items").fetchall()
    assert len(failed) == 6 and {(s, t) for s, t, _ in failed} == {("failed", "invalid_request")}
    assert all(refused.value.message in message for *_, message in failed)
    queue = app_db.execute("SELECT DISTINCT status, error FROM app.llm_requests WHERE workload = %s",
                           (TICKETS.name,)).fetchall()
    assert [status for status, _ in queue] == ["failed"] and field in queue[0][1]


def test_the_models_api_wins_over_the_table_for_the_run(app_db, emulator, monkeypatch, caplog):
    table = model_table()
    wrong = replace(table.models["claude-haiku-5-5"], structured_outputs=False)  # the table is out of date
    monkeypatch.setitem(table.models, "claude-haiku-5-5", wrong)
    seed(app_db, tickets=4)
    with caplog.at_level(logging.WARNING, logger="nightshift.batch.preflight"):
        night = run_night(app_db, emulator_backend(emulator), TICKETS)
    assert night.summary.succeeded == 4
    assert "structured_outputs: table says False, the Models API says True" in caplog.text
    details = app_db.execute("SELECT details FROM nightshift.runs WHERE run_pk = %s", (night.run.run_pk,)).fetchone()[0]
    assert details["request_shape"]["delivery"] == "json_schema" and details["capability_differences"]
    assert emulator.endpoint_calls("models") == 1  # once a run


def item_usages(conn, run_pk) -> list[tuple[Usage, Decimal]]:
    rows = conn.execute(
        "SELECT input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_input_tokens, "
        "cost_usd FROM nightshift.items WHERE run_pk = %s ORDER BY input_tokens", (run_pk,)).fetchall()
    return [(Usage(*tokens), cost) for *tokens, cost in rows]


def test_a_night_is_priced_with_the_row_in_force_on_its_date(app_db, emulator):
    """Sonnet 5.5's cache read went from $0.20 to $0.10 on 2026-10-07: a night on each side keeps its own."""
    discount = price_table().batch_discount
    for index, day in enumerate((datetime(2026, 10, 6, 2, tzinfo=timezone.utc),
                                 datetime(2026, 10, 8, 2, tzinfo=timezone.utc))):
        if index:
            app_db.execute("DELETE FROM app.product_enrichments")
            app_db.execute("DELETE FROM app.llm_requests")
            app_db.commit()
        seed(app_db, products=6)
        night = run_night(app_db, emulator_backend(emulator), PRODUCTS, airflow_run_id=f"manual__{index}", started_at=day)
        assert night.summary.succeeded == 6 and night.run.billed_on == day.date()
        rates = price_table().price(PRODUCTS.model, day.date()).rates
        assert rates.cache_read == (Decimal("0.20") if index == 0 else Decimal("0.10"))
        items = item_usages(app_db, night.run.run_pk)
        assert sum(usage.cache_read_tokens for usage, _ in items) > 0
        for usage, cost in items:
            assert cost == rates.dollars(usage, cached=True) * discount
        recorded = app_db.execute("SELECT cost_usd, warmup_cost_usd FROM nightshift.runs WHERE run_pk = %s",
                                  (night.run.run_pk,)).fetchone()
        assert recorded[0] == sum(cost for _, cost in items) + recorded[1]


def test_a_haiku_5_5_request_over_100k_prompt_tokens_pays_the_upper_band(app_db, emulator):
    seed(app_db, tickets=2)
    app_db.execute("UPDATE app.support_tickets SET body = repeat('a long thread of replies. ', 14000) "
                   "WHERE ticket_id = (SELECT min(ticket_id) FROM app.support_tickets)")
    app_db.commit()
    night = run_night(app_db, emulator_backend(emulator), TICKETS)
    assert night.summary.succeeded == 2
    (short, short_cost), (long, long_cost) = item_usages(app_db, night.run.run_pk)
    assert short.total_input_tokens < 100_000 < long.total_input_tokens
    price = price_table().price("claude-haiku-5-5")
    assert long_cost == price.long_prompt.dollars(long, cached=True) * price_table().batch_discount
    assert short_cost == price.rates.dollars(short, cached=True) * price_table().batch_discount
    uncached, caching = app_db.execute("SELECT streaming_uncached_usd, details -> 'caching' FROM nightshift.runs "
                                       "WHERE run_pk = %s", (night.run.run_pk,)).fetchone()
    warmup = Usage(**(caching["warmup_usage"] or {}))
    # each band priced apart: the long request at the upper rates, the short one and the warm-up at the lower
    assert uncached == (price.long_prompt.dollars(long, cached=False) + price.rates.dollars(short, cached=False)
                        + price.rates.dollars(warmup, cached=False))


def test_a_workload_that_sends_what_its_model_refuses_is_refused_at_load(tmp_path):
    from nightshift.workloads.definition import WorkloadDefinitionError, load_workload_file
    import yaml

    from nightshift import paths

    shipped = paths.PROJECT_ROOT / "workloads"
    source = yaml.safe_load((shipped / "product_enrichment.yaml").read_text())
    shutil.copytree(shipped / "prompts", tmp_path / "prompts")
    cases = {
        "forced tool on sonnet 5.5": ({"output": {**source["output"], "delivery": "forced_tool"}},
                                      "refuses a forced tool_choice"),
        "sampling": ({"temperature": 0.3}, "the API rejects sampling parameters"),
        "no room to think": ({"effort": "high", "max_tokens": 1000}, "leaves no room for the answer"),
        "opus cannot stop thinking": ({"model": "claude-opus-5-5", "thinking": "off"}, "cannot turn thinking off"),
        "effort the model lacks": ({"model": "claude-haiku-4-5", "effort": "low"}, "has no effort setting"),
    }
    for name, (changes, message) in cases.items():
        path = tmp_path / "product_enrichment.yaml"
        path.write_text(yaml.safe_dump({**source, **changes}))
        with pytest.raises(WorkloadDefinitionError, match=message):
            load_workload_file(path)


def test_the_report_names_each_nights_model_and_request_shape(app_db, emulator):
    from nightshift.report import latest_nights

    seed(app_db, tickets=3)
    run_night(app_db, emulator_backend(emulator), TICKETS)
    (report,) = [r for r in latest_nights(app_db) if r.workload == TICKETS.name]
    assert report.model == "claude-haiku-5-5"
    assert report.request_shape == "json_schema, effort low, thinking"
