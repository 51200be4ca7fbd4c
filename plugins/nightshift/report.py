"""The morning-after report: what each workload's requests came to, and where the rows are."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from rich.console import Console
from rich.table import Table

from nightshift.workloads.registry import all_workloads


@dataclass
class WorkloadOutcome:
    workload: str
    destination: str
    requests: int = 0
    succeeded: int = 0
    pending: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    destination_rows: int = 0
    examples: list[tuple[str, str]] = field(default_factory=list)

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())


def collect(conn: psycopg.Connection) -> list[WorkloadOutcome]:
    outcomes = []
    for workload in all_workloads().values():
        outcome = WorkloadOutcome(workload.name, workload.destination.table)
        for status, reason, count in conn.execute(
            "SELECT status, split_part(coalesce(error, ''), ':', 1), count(*) FROM app.llm_requests "
            "WHERE workload = %s GROUP BY 1, 2",
            (workload.name,),
        ):
            outcome.requests += count
            if status == "done":
                outcome.succeeded += count
            elif status == "failed":
                outcome.failed[reason or "unknown"] = outcome.failed.get(reason or "unknown", 0) + count
            else:
                outcome.pending += count
        outcome.destination_rows = conn.execute(f"SELECT count(*) FROM {workload.destination.table}").fetchone()[0]
        outcome.examples = conn.execute(
            "SELECT source_key, error FROM app.llm_requests WHERE workload = %s AND status = 'failed' "
            "ORDER BY request_id LIMIT 3",
            (workload.name,),
        ).fetchall()
        outcomes.append(outcome)
    return outcomes


def print_report(conn: psycopg.Connection, console: Console | None = None) -> list[WorkloadOutcome]:
    console = console or Console()
    outcomes = collect(conn)
    table = Table(title="Nightshift — what happened", title_justify="left")
    for column in ("workload", "requests", "succeeded", "failed (reason: count)", "still pending", "results in"):
        table.add_column(column, justify="right" if column in {"requests", "succeeded", "still pending"} else "left")
    for o in outcomes:
        failed = ", ".join(f"{reason}: {count}" for reason, count in sorted(o.failed.items())) or "0"
        table.add_row(o.workload, str(o.requests), str(o.succeeded), failed, str(o.pending),
                      f"{o.destination} ({o.destination_rows} rows)")
    console.print(table)
    for o in outcomes:
        for source_key, error in o.examples:
            console.print(f"  [yellow]failed[/] {o.workload} {source_key}: {error[:160]}")
    console.print("Failures are queryable: SELECT * FROM app.llm_requests WHERE status = 'failed';")
    return outcomes
