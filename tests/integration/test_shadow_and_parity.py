"""Migrating a workload: shadow runs, the parity report, and the switch gate."""

from __future__ import annotations

import pytest

from nightshift.batch.collect import collect
from nightshift.batch.finalize import finalize_run
from nightshift.batch.land import land_round
from nightshift.batch.ledger import ensure_run
from nightshift.batch.submit import Caps, submit_round
from nightshift.migration import parity
from nightshift.migration.modes import get_mode, set_mode
from nightshift.migration.switch import SwitchRefused, switch
from nightshift.streaming import run_streaming
from nightshift.deployment import get_workload
from tests.batch_night import run_night, wait_until_ended
from tests.helpers import destination_rows, queue_states, emulator_backend, seed

TICKETS = get_workload("ticket_classification")
PRODUCTS = get_workload("product_enrichment")


def shadow_night(conn, backend, workload):
    run = ensure_run(conn, workload, dag_id="shadow", airflow_run_id=f"shadow-{workload.name}", mode="shadow")
    conn.execute("UPDATE nightshift.runs SET data_interval_start = now() - interval '2 days', "
                 "data_interval_end = now() + interval '1 minute' WHERE run_pk = %s", (run.run_pk,))
    conn.commit()
    collect(conn, workload, run)
    submitted = submit_round(conn, backend, workload, run, 0, Caps())
    wait_until_ended(backend, submitted.batch_ids)
    land_round(conn, backend, workload, run, 0)
    return finalize_run(conn, run)


@pytest.mark.parametrize("workload", [TICKETS, PRODUCTS], ids=lambda w: w.name)
def test_shadow_mode_fills_the_shadow_table_and_leaves_the_destination_alone(app_db, emulator, workload):
    seed(app_db, tickets=15, products=15)
    backend = emulator_backend(emulator)
    set_mode(app_db, workload, "shadow")
    run_streaming(app_db, backend, workload, claimer="stream")
    destination_before = destination_rows(app_db, workload.destination.table, workload.destination.key)
    queue_before = queue_states(app_db, workload.name)

    summary = shadow_night(app_db, backend, workload)

    assert summary.succeeded == 15
    assert destination_rows(app_db, workload.destination.table, workload.destination.key) == destination_before
    assert queue_states(app_db, workload.name) == queue_before == {"done": 15}
    shadow_rows = app_db.execute(f"SELECT count(*) FROM nightshift.shadow_{workload.name}").fetchone()[0]
    assert shadow_rows == 15


def test_parity_is_complete_on_deterministic_replies_and_costs_both_paths(app_db, emulator):
    seed(app_db, tickets=20)
    backend = emulator_backend(emulator)
    set_mode(app_db, TICKETS, "shadow")
    run_streaming(app_db, backend, TICKETS, claimer="stream")
    shadow_night(app_db, backend, TICKETS)
    report = parity.compare(app_db, TICKETS)
    assert (report.rows_compared, report.rows_agreeing, report.agreement) == (20, 20, 1.0)
    assert report.field_agreement == {"label": 1.0, "rationale": 1.0}
    assert report.requests_costed == 20
    assert 0 < report.batch_cost_usd < report.streaming_cost_usd


def test_parity_catches_a_perturbed_reply(app_db, emulator):
    seed(app_db, products=12)
    backend = emulator_backend(emulator)
    set_mode(app_db, PRODUCTS, "shadow")
    run_streaming(app_db, backend, PRODUCTS, claimer="stream")
    emulator.add_fault(kind="perturb", custom_id=r".*-q(3|7)")
    shadow_night(app_db, backend, PRODUCTS)
    report = parity.compare(app_db, PRODUCTS)
    assert report.rows_compared == 12 and report.rows_agreeing == 10
    assert {d.key for d in report.differences} == {"3", "7"}


def test_the_switch_refuses_below_the_threshold_with_the_numbers(app_db, emulator):
    seed(app_db, products=10)
    backend = emulator_backend(emulator)
    set_mode(app_db, PRODUCTS, "shadow")
    run_streaming(app_db, backend, PRODUCTS, claimer="stream")
    emulator.add_fault(kind="perturb", custom_id=r".*-q2")
    shadow_night(app_db, backend, PRODUCTS)
    with pytest.raises(SwitchRefused, match=r"agreement 90\.00% \(9 of 10 keys, 0 shadow failures\) is below "
                                            r"the required 98\.00%"):
        switch(app_db, PRODUCTS, "batch", min_keys=10)
    assert get_mode(app_db, PRODUCTS) == "shadow"
    assert "switched to batch" in switch(app_db, PRODUCTS, "batch", min_agreement=0.9, min_keys=10)
    assert get_mode(app_db, PRODUCTS) == "batch"
    recorded = app_db.execute("SELECT count(*) FROM nightshift.parity_reports WHERE workload = %s",
                              (PRODUCTS.name,)).fetchone()[0]
    assert recorded == 2


def test_switching_with_no_evidence_is_refused(app_db, emulator):
    set_mode(app_db, TICKETS, "shadow")
    with pytest.raises(SwitchRefused, match="no key has both a streaming and a shadow answer"):
        switch(app_db, TICKETS, "batch")


def test_parity_before_any_shadow_run_says_so_in_one_line(app_db, capsys):
    from nightshift.cli import main

    app_db.execute("DROP TABLE IF EXISTS nightshift.shadow_ticket_classification")
    app_db.commit()
    assert main(["parity", "--workload", TICKETS.name]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("ticket_classification has no shadow run yet, so there is nothing to compare: run "
                   "`nightshift switch --workload ticket_classification --to shadow`, then its batch DAG")
    assert main(["parity", "--workload", TICKETS.name, "--json"]) == 1


def test_agreement_rests_only_on_keys_the_streaming_path_answered(app_db, emulator):
    """Destination rows an earlier batch-mode night wrote are not streaming answers: comparing the shadow run
    with them would be batch against batch."""
    backend = emulator_backend(emulator)
    seed(app_db, tickets=6)
    run_night(app_db, backend, TICKETS, airflow_run_id="batch-mode-night")
    seed(app_db, tickets=4)
    set_mode(app_db, TICKETS, "shadow")
    run_streaming(app_db, backend, TICKETS, claimer="stream")
    shadow_night(app_db, backend, TICKETS)
    assert app_db.execute("SELECT count(*) FROM nightshift.shadow_ticket_classification").fetchone()[0] == 10

    report = parity.compare(app_db, TICKETS)
    assert (report.rows_compared, report.rows_agreeing, report.only_batch, report.only_streaming) == (4, 4, 6, 0)
    with pytest.raises(SwitchRefused, match=r"rests on 4 keys, fewer than the 200 required \(migration.min_keys\)"):
        switch(app_db, TICKETS, "batch")
    assert "over 4 keys" in switch(app_db, TICKETS, "batch", min_keys=4)


def test_a_key_the_shadow_run_failed_counts_as_a_disagreement(app_db, emulator):
    seed(app_db, tickets=12)
    backend = emulator_backend(emulator)
    set_mode(app_db, TICKETS, "shadow")
    run_streaming(app_db, backend, TICKETS, claimer="stream")
    emulator.add_fault(kind="perturb", mode="schema_violation", custom_id=r".*-q(3|7)")
    summary = shadow_night(app_db, backend, TICKETS)
    assert summary.failed == {"invalid_output": 2}

    report = parity.compare(app_db, TICKETS)
    assert (report.rows_compared, report.rows_agreeing, report.shadow_failures) == (12, 10, 2)
    assert report.agreement == pytest.approx(10 / 12)
    failed_keys = {d.key for d in report.differences}
    assert len(failed_keys) == 2


def test_text_similarity_tolerates_wording_noise_not_different_meaning():
    assert parity.text_similarity("A tent for two.", "a tent  for two") == 1.0
    assert parity.text_similarity("Customer was double charged", "Customer was charged twice") < 0.9
