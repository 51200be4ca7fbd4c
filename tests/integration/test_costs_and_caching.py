"""Caching and the cost ledger on a real night: emulator usage in, auditable SQL out."""

from __future__ import annotations

import logging
from decimal import Decimal


from nightshift.deployment import get_workload
from tests.batch_night import run_night
from tests.helpers import emulator_backend, seed

TICKETS = get_workload("ticket_classification")
PRODUCTS = get_workload("product_enrichment")


def item_cache_counts(conn, run_pk):
    return conn.execute(
        "SELECT count(*) FILTER (WHERE cache_read_input_tokens > 0), count(*) FILTER (WHERE cache_creation_input_tokens > 0), "
        "count(*) FROM nightshift.items WHERE run_pk = %s AND status = 'succeeded'", (run_pk,)).fetchone()


def run_costs(conn, run_pk) -> dict:
    cur = conn.execute("SELECT * FROM nightshift.run_costs WHERE run_pk = %s", (run_pk,))
    return dict(zip([c.name for c in cur.description], cur.fetchone()))


def test_a_cached_prefix_is_read_by_every_item_after_the_warmup(app_db, emulator):
    seed(app_db, tickets=20)
    night = run_night(app_db, emulator_backend(emulator), TICKETS)
    reads, writes, succeeded = item_cache_counts(app_db, night.run.run_pk)
    assert succeeded == 20 and reads == 20 and writes == 0  # the warm-up wrote the prefix once
    caching = app_db.execute("SELECT details -> 'caching' FROM nightshift.runs WHERE run_pk = %s",
                             (night.run.run_pk,)).fetchone()[0]
    assert caching["cacheable"] and caching["warmup"] and caching["prefix_tokens"] >= 4096
    costs = run_costs(app_db, night.run.run_pk)
    assert costs["warmup_cost_usd"] > 0
    assert costs["cache_hit_ratio"] == round(Decimal(20) / 21, 4)  # 20 reads after the warm-up's one write
    assert costs["cost_usd"] < costs["streaming_cached_usd"] < costs["streaming_uncached_usd"]


def test_without_warmup_only_the_first_request_writes_the_cache(app_db, emulator, monkeypatch):
    settings = TICKETS.batch.model_copy(update={"warmup": "never"})
    workload = TICKETS.model_copy(update={"batch": settings})
    seed(app_db, tickets=15)
    night = run_night(app_db, emulator_backend(emulator), workload)
    reads, writes, succeeded = item_cache_counts(app_db, night.run.run_pk)
    assert (reads, writes, succeeded) == (14, 1, 15)


def test_the_run_cost_is_the_sum_of_its_items_and_the_warmup(app_db, emulator):
    seed(app_db, tickets=12)
    night = run_night(app_db, emulator_backend(emulator), TICKETS)
    items_total = app_db.execute("SELECT sum(cost_usd) FROM nightshift.items WHERE run_pk = %s",
                                 (night.run.run_pk,)).fetchone()[0]
    costs = run_costs(app_db, night.run.run_pk)
    assert costs["cost_usd"] == items_total + costs["warmup_cost_usd"]
    assert costs["savings_usd"] == costs["streaming_uncached_usd"] - costs["cost_usd"]
    assert Decimal(0) < costs["savings_pct"] < Decimal(100)


def test_a_prefix_under_the_minimum_earns_no_cache_tokens_and_the_log_says_why(app_db, emulator, caplog):
    short = PRODUCTS.model_copy(update={"instructions": "Enrich the product: a summary, a category, attributes."})
    seed(app_db, products=10)
    with caplog.at_level(logging.WARNING, logger="nightshift.batch.costing"):
        night = run_night(app_db, emulator_backend(emulator), short)
    reads, writes, succeeded = item_cache_counts(app_db, night.run.run_pk)
    assert succeeded == 10 and reads == 0 and writes == 0
    assert "under claude-sonnet-5-5's minimum cacheable length of 512" in caplog.text
    caching = app_db.execute("SELECT details -> 'caching' FROM nightshift.runs WHERE run_pk = %s",
                             (night.run.run_pk,)).fetchone()[0]
    assert caching["cacheable"] is False and caching["warmup"] is False


def test_billed_replies_that_fail_validation_are_counted(app_db, emulator):
    emulator.configure(malformed_rate=0.5)
    seed(app_db, tickets=20)
    night = run_night(app_db, emulator_backend(emulator), TICKETS)
    invalid = night.summary.failed.get("invalid_output", 0)
    assert invalid > 0
    assert run_costs(app_db, night.run.run_pk)["billed_failed"] == invalid
