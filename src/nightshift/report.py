"""The morning-after report: per workload, what the latest night came to and where the rows are."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from rich.console import Console
from rich.table import Table

from nightshift.ledger import cascades as ledger_cascades
from nightshift.ledger import reports as ledger_reports
from nightshift.ledger.status import ItemStatus
from nightshift.deployment import all_workloads


@dataclass
class NightReport:
    workload: str
    destination: str
    run_pk: int | None = None
    status: str = "no run yet"
    model: str = ""
    request_shape: str = ""
    requests: int = 0
    succeeded: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    rounds: int = 0
    batches: list[tuple[str, int, int, str]] = field(default_factory=list)
    destination_rows: int = 0
    examples: list[tuple[str, str, str]] = field(default_factory=list)
    costs: dict | None = None
    #: a cascade night's cost by model, and what it would have cost on its last model alone
    cost_by_model: dict | None = None
    last_model_alone_usd: float | None = None


def latest_nights(conn: psycopg.Connection) -> list[NightReport]:
    reports = []
    for workload in all_workloads().values():
        report = NightReport(workload.name, workload.destination.table)
        table = sql.Identifier(*workload.destination.table.split("."))
        report.destination_rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()[0]
        row = ledger_reports.latest_run(conn, workload.name)
        if row:
            report.run_pk, report.status, report.model, report.request_shape = row
            _fill_from_ledger(conn, report)
        reports.append(report)
    return reports


def _fill_from_ledger(conn: psycopg.Connection, report: NightReport) -> None:
    for status, reason, count in ledger_reports.outcomes(conn, report.run_pk):
        report.requests += count
        if status == ItemStatus.SUCCEEDED:
            report.succeeded += count
        elif status == ItemStatus.FAILED:
            report.failed[reason] = count
    report.batches = ledger_reports.batches(conn, report.run_pk)
    report.rounds = len({b[1] for b in report.batches})
    report.costs = ledger_reports.costs(conn, report.run_pk)
    by_model, alone, _ = ledger_cascades.cost_by_model(conn, report.run_pk)
    if alone is not None:  # a cascade night: its cost by model, and on its last model alone
        report.cost_by_model, report.last_model_alone_usd = by_model, float(alone)
    report.examples = ledger_reports.failed_examples(conn, report.run_pk)


def print_report(conn: psycopg.Connection, console: Console | None = None) -> list[NightReport]:
    console = console or Console(width=max(Console().width, 120))
    reports = latest_nights(conn)
    table = Table(title="Nightshift — the latest night", title_justify="left")
    for column in ("workload", "run", "requests", "succeeded", "failed", "rounds", "batches", "rows in"):
        table.add_column(column, justify="left" if column in {"workload", "run", "rows in"} else "right")
    for r in reports:
        table.add_row(r.workload, f"#{r.run_pk} {r.status}" if r.run_pk else r.status, str(r.requests),
                      str(r.succeeded), str(sum(r.failed.values())), str(r.rounds), str(len(r.batches)),
                      f"{r.destination} ({r.destination_rows})")
    console.print(table)
    for r in reports:
        if r.model:
            console.print(f"[bold]{r.workload}[/] ran on {r.model}" + (f" ({r.request_shape})" if r.request_shape else ""))
    _print_costs(console, reports)
    print_cost_by_model(console, reports)
    for r in reports:
        if not (r.failed or r.batches):
            continue
        # Every workload's details open with its own name, failures or not, so no round reads as another's.
        console.print(f"[bold]{r.workload}[/] run #{r.run_pk}:")
        if r.failed:
            reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(r.failed.items()))
            console.print(f"  failed by reason: {reasons}")
        for batch_id, round_, count, state in r.batches:
            console.print(f"  round {round_}: {batch_id}, {count} requests, {state}")
        for source_key, reason, message in r.examples:
            console.print(f"  [yellow]failed[/] key {source_key}: {reason}: {(message or '')[:110]}")
    console.print(f"Every request's outcome: {ledger_reports.EVERY_OUTCOME}")
    return reports


def _print_costs(console: Console, reports: list[NightReport]) -> None:
    priced = [r for r in reports if r.costs and r.costs["cost_usd"] is not None]
    if not priced:
        return
    table = Table(title="What it cost, against the streaming path it replaced", title_justify="left")
    for column in ("workload", "batch (actual)", "streaming, no cache", "streaming, cached", "saved", "cache hits",
                   "prefix"):
        table.add_column(column, justify="left" if column in ("workload", "prefix") else "right")
    for r in priced:
        c = r.costs
        hits = "-" if c["cache_hit_ratio"] is None else f"{100 * c['cache_hit_ratio']:.0f}%"
        table.add_row(r.workload, f"${c['cost_usd']:.4f}", f"${c['streaming_uncached_usd']:.4f}",
                      f"${c['streaming_cached_usd']:.4f}", f"{c['savings_pct']}%", hits,
                      f"{c['prefix_tokens']} tokens: {c['reason']}")
    console.print(table)


def print_cost_by_model(console: Console, reports: list[NightReport]) -> None:
    """A cascade night's cost by model, and the same night on its last model alone: a re-pricing of
    the attempts its last model did not make, at that model's batch rates (the tokens are the cheaper
    model's, as the API counted them)."""
    for r in reports:
        if not r.cost_by_model:
            continue
        table = Table(title=f"{r.workload} run #{r.run_pk}: cost by model", title_justify="left")
        for column in ("model", "items answered", "attempts", "input tokens", "output tokens", "cost"):
            table.add_column(column, justify="left" if column == "model" else "right")
        for model, e in r.cost_by_model.items():
            table.add_row(model, str(e["items_answered"]), str(e["attempts"]), str(e["input_tokens"]),
                          str(e["output_tokens"]), f"${e['cost_usd']:.4f}")
        console.print(table)
        last, actual = list(r.cost_by_model)[-1], float((r.costs or {}).get("cost_usd") or 0)
        alone = r.last_model_alone_usd
        share = f" ({100 * (alone - actual) / alone:.1f}%)" if alone else ""
        console.print(f"  the night: ${actual:.4f}; on {last} alone (a re-pricing): ${alone:.4f}; "
                      f"saved ${alone - actual:.4f}{share}")
