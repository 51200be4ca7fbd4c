"""What must hold after every fault, checked in SQL and against what the emulator saw."""

from __future__ import annotations

import psycopg

from tests.helpers import assert_every_request_terminal, sdk_client


def assert_nothing_lost_or_doubled(conn: psycopg.Connection, emulator, run_pk: int, *,
                                   destination: str = "app.ticket_classifications", key: str = "ticket_id") -> None:
    """Every request terminal (succeeded with exactly one destination row, or failed with a
    reason), no duplicate destination row, no destination row older than a later landed request
    for its key, no batch at the API the ledger does not know but another team's, and no batch
    outside the ledger cancelled."""
    conn.commit()
    assert_every_request_terminal(conn, run_pk, destination, key)
    extra_rows = conn.execute(
        f"SELECT count(*) FROM {destination} d JOIN nightshift.items i ON i.source_key = d.{key}::text "
        "WHERE i.run_pk = %s AND i.status = 'failed'", (run_pk,)).fetchone()[0]
    assert extra_rows == 0, f"{extra_rows} failed items have a destination row anyway"
    stale = conn.execute(
        f"SELECT d.{key}, d.request_id, max(i.request_id) FROM {destination} d JOIN nightshift.items i "
        f"ON i.source_key = d.{key}::text AND i.status = 'succeeded' AND i.request_id IS NOT NULL "
        "GROUP BY 1, 2 HAVING d.request_id < max(i.request_id)").fetchall()
    assert not stale, f"destination rows older than a later landed request for their key: {stale[:5]}"
    ledger = [b for (b,) in conn.execute(
        "SELECT backend_batch_id FROM nightshift.batches WHERE backend_batch_id IS NOT NULL")]
    assert len(ledger) == len(set(ledger)), "one API batch recorded for two intents"
    stats = emulator.stats()
    foreign = {b["id"] for b in stats["foreign_batches"]}
    at_api = [b.id for b in sdk_client(emulator).messages.batches.list(limit=1000)]
    unknown = set(at_api) - set(ledger) - foreign
    assert not unknown, f"batches at the API that the ledger does not know (paid for twice?): {sorted(unknown)}"
    adopted_foreign = foreign & set(ledger)
    assert not adopted_foreign, f"another team's batches taken into the ledger: {sorted(adopted_foreign)}"
    assert_no_batch_outside_the_ledger_cancelled(stats, set(ledger))
    assert_each_row_names_the_model_that_answered(conn, run_pk, destination)


def assert_each_row_names_the_model_that_answered(conn: psycopg.Connection, run_pk: int,
                                                  destination: str) -> None:
    """A cascade's promise: an item landed once, by one model (the one it was last sent to), whose
    delivery record names it; the models before it passed it on (``escalated``) and wrote nothing."""
    cascade = conn.execute("SELECT details -> 'cascade_models' FROM nightshift.runs WHERE run_pk = %s",
                           (run_pk,)).fetchone()[0]
    if not cascade:
        return
    wrong = conn.execute(
        "SELECT i.source_key, i.model, d.model FROM nightshift.items i JOIN nightshift.deliveries d "
        "ON d.destination = %s AND d.source_key = i.source_key AND d.request_id = i.request_id "
        "WHERE i.run_pk = %s AND i.status = 'succeeded' AND d.model IS DISTINCT FROM i.model",
        (destination, run_pk)).fetchall()
    assert not wrong, f"rows that do not name the model their item was answered by: {wrong[:5]}"
    passed_on = conn.execute(
        "SELECT a.custom_id, a.model, i.model FROM nightshift.attempts a JOIN nightshift.items i "
        "USING (run_pk, custom_id) WHERE a.run_pk = %s AND a.error_type = 'escalated' "
        "AND (i.status = 'succeeded' AND i.model = a.model OR a.model = %s)",
        (run_pk, cascade[-1])).fetchall()
    assert not passed_on, f"escalated attempts whose model answered anyway, or the last's: {passed_on[:5]}"
    order = {model: at for at, model in enumerate(cascade)}
    for custom_id, models in conn.execute(
            "SELECT custom_id, array_agg(model ORDER BY round) FROM nightshift.attempts WHERE run_pk = %s "
            "GROUP BY 1", (run_pk,)).fetchall():
        assert [order[m] for m in models] == sorted(order[m] for m in models), \
            f"{custom_id} went back to an earlier model: {models}"


def assert_no_batch_outside_the_ledger_cancelled(stats: dict, ledger: set[str]) -> None:
    """Nightshift cancels only batches it recorded as its own; another team's are never touched."""
    outside = set(stats["canceled_batches"]) - ledger
    assert not outside, f"batches the ledger does not hold were cancelled: {sorted(outside)}"
    foreign = [b["id"] for b in stats["foreign_batches"] if b["canceled"]]
    assert not foreign, f"another team's batches were cancelled: {foreign}"


def outcomes(conn: psycopg.Connection, run_pk: int) -> dict[str, int]:
    conn.commit()
    return dict(conn.execute("SELECT coalesce(error_type, status), count(*) FROM nightshift.items "
                             "WHERE run_pk = %s GROUP BY 1", (run_pk,)).fetchall())


def fired(emulator) -> list[int]:
    """How often each injected fault fired: proof the scenario really happened."""
    return [fault["fired"] for fault in emulator.faults()]


def assert_every_billed_request_has_a_cost(conn: psycopg.Connection, emulator, run_pk: int) -> None:
    """Every request the API answered with a billed message has its usage and cost on its item, or,
    for an attempt the item has moved on from (escalated, retried), on that attempt's record."""
    conn.commit()
    client = sdk_client(emulator)
    batch_ids = [(b, round_) for (b, round_) in conn.execute(
        "SELECT backend_batch_id, round FROM nightshift.batches WHERE run_pk = %s "
        "AND backend_batch_id IS NOT NULL "
        "AND status <> 'abandoned'", (run_pk,))]
    billed = {(result.custom_id, round_) for batch_id, round_ in batch_ids
              for result in client.messages.batches.results(batch_id) if result.result.type == "succeeded"}
    # an item holds its current round's attempt; its earlier ones (escalated, retried) keep their own record
    costed = set(conn.execute(
        "SELECT custom_id, round FROM nightshift.items WHERE run_pk = %(run)s AND cost_usd > 0 UNION "
        "SELECT custom_id, round FROM nightshift.attempts WHERE run_pk = %(run)s AND cost_usd > 0",
        {"run": run_pk}).fetchall())
    assert billed <= costed, f"billed requests with no recorded cost: {sorted(billed - costed)[:10]}"
