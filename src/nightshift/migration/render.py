"""The parity report as a person reads it."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from nightshift.migration.parity import ParityReport


def print_parity(report: ParityReport, console: Console | None = None) -> None:
    console = console or Console(width=120)
    console.print(f"[bold]Parity for {report.workload}[/]: {report.agreement:.2%} of {report.rows_compared} keys agree "
                  f"(keys both paths answered; {report.shadow_failures} of them failed in the shadow run and count "
                  f"as disagreements). Not compared: {report.only_streaming} keys only the streaming path answered, "
                  f"{report.only_batch} only the shadow run")
    fields = Table("field", "agreement", title="Per field", title_justify="left")
    for column, share in report.field_agreement.items():
        fields.add_row(column, f"{share:.2%}")
    console.print(fields)
    if report.requests_costed:
        saving = 1 - report.batch_cost_usd / report.streaming_cost_usd if report.streaming_cost_usd else 0
        console.print(f"Cost on the same {report.requests_costed} requests: streaming ${report.streaming_cost_usd:.4f}, "
                      f"batch ${report.batch_cost_usd:.4f} ({saving:.1%} less)")
    if report.differences:
        diffs = Table("key", "field", "streaming", "batch", "similarity", title="Differing rows (first 50)",
                      title_justify="left")
        for d in report.differences:
            diffs.add_row(d.key, d.field, str(d.streaming)[:60], str(d.batch)[:60],
                          "" if d.similarity is None else f"{d.similarity:.2f}")
        console.print(diffs)
