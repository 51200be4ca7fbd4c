"""``nightshift report`` as its reader sees it: each workload's night printed under that workload's name."""

from __future__ import annotations

import io

from rich.console import Console

from nightshift.deployment import all_workloads, get_workload
from nightshift.report import print_report
from tests.batch_night import run_night
from tests.helpers import emulator_backend, seed

TICKETS = get_workload("ticket_classification")
PRODUCTS = get_workload("product_enrichment")


def _printed(conn) -> list[str]:
    out = io.StringIO()
    print_report(conn, Console(file=out, width=160, color_system=None))
    return out.getvalue().splitlines()


def _batch_owners(conn) -> dict[str, str]:
    return dict(conn.execute("SELECT b.backend_batch_id, r.workload FROM nightshift.batches b "
                             "JOIN nightshift.runs r USING (run_pk) WHERE b.backend_batch_id IS NOT NULL").fetchall())


def test_each_workloads_rounds_are_printed_under_its_own_name(app_db, emulator):
    """One workload's night has failures and the other's has none: the report used to print a failure-free
    workload's rounds with no header of its own, so they read as the rounds of the workload above them."""
    seed(app_db, tickets=6, bad_every=3)  # two tickets with an empty body: failed invalid_input
    seed(app_db, products=4)
    backend = emulator_backend(emulator)
    for workload in (TICKETS, PRODUCTS):
        run_night(app_db, backend, workload, emulator=emulator)
    owners = _batch_owners(app_db)
    assert set(owners.values()) == {TICKETS.name, PRODUCTS.name}

    names = tuple(all_workloads())
    heading = None
    seen = set()
    for line in _printed(app_db):
        if line.startswith(names):  # a line that starts with a workload's name speaks about that workload
            heading = next(n for n in names if line.startswith(n))
        for batch_id, workload in owners.items():
            if batch_id in line:
                assert heading == workload, f"{workload}'s batch {batch_id} printed under {heading}: {line!r}"
                seen.add(batch_id)
    assert seen == set(owners)
