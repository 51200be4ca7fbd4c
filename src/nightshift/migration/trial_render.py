"""A model trial's report as a person reads it (from the stored report, so a reprint is the same)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from nightshift.migration.trial_stats import Interval


def agreement_line(k: int, n: int, low: float, high: float) -> str:
    """``93.1% (91.9–94.1%, n=2,000)``."""
    return str(Interval(k, n, low, high))


def print_trial(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(width=120)
    sampling = report.get("sampling") or {}
    console.print(
        f"[bold]Trial #{report['trial_pk']} of {report['workload']}[/]: {report['candidate_model']} against "
        f"{report['current_model']} (the model that wrote the rows) on {report['keys_compared']:,} keys")
    window = sampling.get("window")
    console.print(
        f"Sample: {sampling.get('method', '?')}, seed {sampling.get('seed')}; "
        f"{sampling.get('taken', 0):,} of {sampling.get('eligible', 0):,} eligible rows"
        + (f" (fewer eligible than the {sampling.get('asked'):,} asked: all taken)"
           if sampling.get("all_eligible_taken") else "")
        + (f"; {window['column']} (the source row's timestamp) from {window['from'] or 'the start'} to "
           f"{window['to'] or 'the end'}, UTC days, both included" if window else ""))
    overall = agreement_line(report["keys_agreeing"], report["keys_compared"], report["agreement_low"],
                             report["agreement_high"])
    console.print("Agreement (a key agrees when every field does; a key the candidate failed disagrees; "
                  f"Wilson 95%): [bold]{overall}[/]")
    fields = Table("field", "compared by", "agreement (95% interval)", title="Per field",
                   title_justify="left")
    for column, f in report["fields"].items():
        fields.add_row(column, f["compared_by"],
                       agreement_line(f["agreeing"], report["keys_compared"], f["low"], f["high"]))
    console.print(fields)
    for column, table in report.get("confusion", {}).items():
        candidates = sorted({c for row in table.values() for c in row})
        confusion = Table(f"{report['current_model']} ↓ / {report['candidate_model']} →", *candidates,
                          "total", title=f"Confusion: {column}", title_justify="left")
        for current, row in sorted(table.items()):
            confusion.add_row(current, *[f"{row.get(c, 0):,}" for c in candidates], f"{sum(row.values()):,}")
        console.print(confusion)
    failures = report.get("candidate_failures") or {}
    if failures:
        console.print("Keys the candidate failed (each a disagreement): "
                      + ", ".join(f"{reason} {n:,}" for reason, n in failures.items()))
    costs = report["costs"]
    current, candidate, projection = costs["current"], costs["candidate"], costs["projection"]
    paths = ", ".join(f"{n:,} {path}" for path, n in current["by_path"].items()) or "none recorded"
    attempts = candidate.get("attempts_billed", candidate["requests_billed"])
    retried = f", {attempts:,} attempts" if attempts != candidate["requests_billed"] else ""
    console.print(
        f"Cost of the sample, from the API's usage: {candidate['model']} ${candidate['sample_usd']:.4f} "
        f"({candidate['requests_billed']:,} requests{retried} at the batch rate); {current['model']} "
        f"${current['sample_usd']:.4f} as recorded for the requests that wrote the rows ({paths}), "
        f"${current['sample_usd_at_batch_rate']:.4f} for the same tokens at the batch rate")
    if projection["current_monthly_usd"] is not None or projection["candidate_monthly_usd"] is not None:
        console.print(
            f"Projected monthly cost at the last {projection['days']} days' volume "
            f"({projection['requests']:,} requests), batch rate, a projection from the sample's mean cost "
            "per request: "
            f"{current['model']} {_usd(projection['current_monthly_usd'])}, "
            f"{candidate['model']} {_usd(projection['candidate_monthly_usd'])}")
    if report.get("differences"):
        diffs = Table("key", "field", "current", "candidate", "similarity", title="Differing keys (first 50)",
                      title_justify="left")
        for d in report["differences"]:
            diffs.add_row(d["key"], d["field"], str(d["current"])[:50], str(d["candidate"])[:50],
                          "" if d["similarity"] is None else f"{d['similarity']:.2f}")
        console.print(diffs)


def _usd(value: float | None) -> str:
    if value is None:
        return "unknown (no cost recorded)"
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"
