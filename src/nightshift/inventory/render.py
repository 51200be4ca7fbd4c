"""The inventory as a person reads it (a rich table and the reasons) or as a program does (CSV, JSON)."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nightshift.inventory.classify import (
    BACKGROUND_TRIGGERS,
    MACHINE_DESTINATIONS,
    MOST_REQUESTS_SHARE,
    PERSON_DESTINATIONS,
    PERSON_TRIGGERS,
    PERSON_WAITING_READ_SECONDS,
    Verdict,
)
from nightshift.inventory.inventory import FeatureInventory, Inventory
from nightshift.inventory.routing import ROUTE_TO, SOURCE_READ_ON, SOURCE_URL, rule_line

VERDICT_STYLE = {Verdict.BATCH: "bold green", Verdict.GRAY: "yellow", Verdict.LIVE: "cyan"}
MAX_ERRORS_SHOWN = 20
CSV_COLUMNS = ("feature", "requests", "verdict", "models", "spend_in_file_usd", "today_monthly_usd",
               "batch_alone_monthly_usd", "batch_cache_monthly_usd", "after_migration_monthly_usd", "saving_pct",
               "routed_monthly_usd", "all_levers_monthly_usd", "all_levers_saving_pct", "routed_to",
               "routed_requests", "median_first_read_seconds", "explanation", "caching_notes", "routing",
               "unpriced_reason")


def money(amount: Decimal | None) -> str:
    if amount is None:
        return "—"
    if 0 < amount < Decimal("0.01"):
        return "<$0.01"
    return f"${amount:,.2f}"


def percent(share: Decimal | None) -> str:
    return "—" if share is None else f"{share * 100:.0f}%"


def summary_lines(inv: Inventory) -> list[str]:
    parsed = inv.parsed
    span = inv.span
    lines = [
        f"{parsed.path} ({parsed.format}): {parsed.rows_read:,} rows, {len(parsed.records):,} valid, "
        f"{len(parsed.errors):,} malformed; {inv.requests:,} requests in {len(inv.features)} features",
        f"span {span.days} day(s), {span.first_day} to {span.last_day} (UTC); monthly = x{inv.month_factor:.4f} "
        f"({inv.days_in_month:g}-day month); prices as of {inv.prices.as_of} (nightshift/data/prices.yaml)",
    ]
    return lines


def print_table(inv: Inventory, console: Console) -> None:
    for line in summary_lines(inv):
        console.print(escape(line), style="dim", highlight=False, soft_wrap=True)
    table = Table(title="Batch migration inventory", title_justify="left", caption_justify="left",
                  caption="/mo = the file's spend scaled to a month. total = after moving the batch candidates; "
                          "the rest stays as it is.")
    table.add_column("feature")
    table.add_column("requests", justify="right")
    table.add_column("verdict")
    table.add_column("in file", justify="right")
    table.add_column("today /mo", justify="right")
    table.add_column("batch alone /mo", justify="right")
    table.add_column("batch + cache /mo", justify="right")
    table.add_column("saving", justify="right")
    for f in inv.features:
        p = f.projection
        if not p.priced:
            table.add_row(escape(f.feature), f"{f.requests:,}", _verdict(f), "[red]unpriced[/]", "[red]unpriced[/]",
                          "—", "—", "—")
            continue
        table.add_row(escape(f.feature), f"{f.requests:,}", _verdict(f), money(p.today_in_file),
                      money(p.today_monthly), money(p.batch_alone_monthly), money(p.batch_cache_monthly),
                      percent(p.saving_share))
    totals = inv.totals
    table.add_section()
    table.add_row("[bold]total[/]", f"{inv.requests:,}", "", "",
                  f"[bold]{money(totals.today_monthly)}[/]", money(totals.batch_alone_monthly),
                  f"[bold]{money(totals.after_migration_monthly)}[/]", f"[bold]{percent(totals.saving_share)}[/]")
    console.print(table)
    if totals.unpriced_features:
        console.print(f"[red]The total leaves out unpriced feature(s): {escape(', '.join(totals.unpriced_features))} "
                      f"(see below).[/]")
    print_levers(inv, console)

    console.print()
    console.print("[bold]Why[/]")
    for f in inv.features:
        console.print(f"[bold]{escape(f.feature)}[/] — {_verdict(f)}: {escape(f.classification.explanation)}",
                      highlight=False, soft_wrap=True)
        if not f.projection.priced:
            console.print(f"    [red]{escape(f.projection.unpriced_reason or '')}[/]", highlight=False, soft_wrap=True)
        for note in f.projection.caching_notes:
            console.print(f"    caching: {escape(note)}", style="dim", highlight=False, soft_wrap=True)
        if f.routing.explanation:
            console.print(f"    routing: {escape(f.routing.explanation)}", style="dim", highlight=False,
                          soft_wrap=True)
    console.print()
    console.print(escape(thresholds_line(inv)), style="dim", highlight=False, soft_wrap=True)
    console.print(escape(rule_line()), style="dim", highlight=False, soft_wrap=True)

    if inv.parsed.errors:
        console.print()
        errors = inv.parsed.errors
        console.print(f"[bold red]{len(errors):,} malformed row(s) skipped[/] (the rest were processed):")
        for error in errors[:MAX_ERRORS_SHOWN]:
            console.print(f"  {escape(str(error))}", highlight=False, soft_wrap=True)
        if len(errors) > MAX_ERRORS_SHOWN:
            console.print(f"  … and {len(errors) - MAX_ERRORS_SHOWN:,} more (--format json lists them all)")


def print_levers(inv: Inventory, console: Console) -> None:
    """Each lever's monthly saving side by side, and the three together (they overlap: the combined
    saving is less than their sum, since batch and caching discount the routed, cheaper tokens)."""
    table = Table(title="Three levers: monthly saving", title_justify="left", caption_justify="left",
                  caption=f"batch = today minus batch alone; caching = batch alone minus batch + cache; "
                          f"routing = today minus the routable rows on {ROUTE_TO} (no batch); all three = "
                          f"today minus routing, batch and caching together, each where it applies. "
                          f"Projections: prove routing with `nightshift trial` before switching.")
    table.add_column("feature")
    table.add_column("today /mo", justify="right")
    table.add_column("batch", justify="right")
    table.add_column("caching", justify="right")
    table.add_column("routing", justify="right")
    table.add_column("all three", justify="right")
    table.add_column("after /mo", justify="right")
    table.add_column("saving", justify="right")
    for f in inv.features:
        p = f.projection
        if not p.priced:
            table.add_row(escape(f.feature), "[red]unpriced[/]", "—", "—", "—", "—", "—", "—")
            continue
        saved = lever_savings(f)
        table.add_row(escape(f.feature), money(p.today_monthly), money(saved["batch"]),
                      money(saved["caching"]), money(saved["routing"]), money(saved["all"]),
                      money(p.all_levers_monthly), percent(p.all_levers_saving_share))
    totals = inv.totals
    table.add_section()
    table.add_row("[bold]total[/]", f"[bold]{money(totals.today_monthly)}[/]",
                  money(totals.today_monthly - totals.batch_alone_monthly),
                  money(totals.batch_alone_monthly - totals.after_migration_monthly),
                  money(totals.today_monthly - totals.routed_monthly),
                  f"[bold]{money(totals.today_monthly - totals.all_levers_monthly)}[/]",
                  f"[bold]{money(totals.all_levers_monthly)}[/]",
                  f"[bold]{percent(totals.all_levers_saving_share)}[/]")
    console.print(table)


def lever_savings(f: FeatureInventory) -> dict[str, Decimal | None]:
    """A priced feature's monthly saving by each lever (None where it does not apply) and by all three."""
    p = f.projection
    today = p.today_monthly
    batch_alone, batch_cache, routed = p.batch_alone_monthly, p.batch_cache_monthly, p.routed_today_monthly
    return {
        "batch": None if batch_alone is None or today is None else today - batch_alone,
        "caching": None if batch_cache is None or batch_alone is None else batch_alone - batch_cache,
        "routing": None if routed is None or today is None else today - routed,
        "all": None if p.all_levers_monthly is None or today is None else today - p.all_levers_monthly,
    }


def thresholds_line(inv: Inventory) -> str:
    def names(values: frozenset[str]) -> str:
        return "/".join(sorted(values))

    return (f"Rules: live when {MOST_REQUESTS_SHARE:.0%} of requests had a person waiting ({names(PERSON_TRIGGERS)} "
            f"trigger, {names(PERSON_DESTINATIONS)} destination, or first read within "
            f"{PERSON_WAITING_READ_SECONDS:g} s); batch candidate when {MOST_REQUESTS_SHARE:.0%} came from "
            f"{names(BACKGROUND_TRIGGERS)} into {names(MACHINE_DESTINATIONS)} and, where known, "
            f"{MOST_REQUESTS_SHARE:.0%} were first read {inv.batch_read_after_seconds / 3600:g} h or more later; "
            f"gray zone otherwise.")


def _verdict(f: FeatureInventory) -> str:
    return f"[{VERDICT_STYLE[f.verdict]}]{f.verdict.value}[/]"


def _usd(amount: Decimal | None) -> float | None:
    return None if amount is None else float(round(amount, 6))


def _pct(share: Decimal | None) -> float | None:
    return None if share is None else float(round(share * 100, 2))


def feature_record(f: FeatureInventory) -> dict[str, Any]:
    p = f.projection
    saving = p.saving_share
    return {
        "feature": f.feature,
        "requests": f.requests,
        "verdict": f.verdict.value,
        "models": dict(f.models.most_common()),
        "spend_in_file_usd": _usd(p.today_in_file),
        "today_monthly_usd": _usd(p.today_monthly),
        "batch_alone_monthly_usd": _usd(p.batch_alone_monthly),
        "batch_cache_monthly_usd": _usd(p.batch_cache_monthly),
        "after_migration_monthly_usd": _usd(f.after_migration_monthly),
        "saving_pct": None if saving is None else float(round(saving * 100, 2)),
        "routed_monthly_usd": _usd(p.routed_today_monthly),
        "all_levers_monthly_usd": _usd(p.all_levers_monthly),
        "all_levers_saving_pct": _pct(p.all_levers_saving_share),
        "routed_to": f.routing.target if f.routing.eligible else None,
        "routed_requests": f.routing.moved_requests,
        "median_first_read_seconds": f.classification.evidence.median_first_read_seconds,
        "explanation": f.classification.explanation,
        "caching_notes": p.caching_notes,
        "routing": f.routing.explanation,
        "unpriced_reason": p.unpriced_reason,
    }


def to_json(inv: Inventory) -> str:
    totals = inv.totals
    document = {
        "file": str(inv.parsed.path),
        "format": inv.parsed.format,
        "rows_read": inv.parsed.rows_read,
        "rows_valid": len(inv.parsed.records),
        "malformed_rows": len(inv.parsed.errors),
        "errors": [{"line": e.line, "fields": e.fields, "message": str(e)} for e in inv.parsed.errors],
        "requests": inv.requests,
        "span": {"first_day": inv.span.first_day.isoformat(), "last_day": inv.span.last_day.isoformat(),
                 "days": inv.span.days},
        "days_in_month": inv.days_in_month,
        "month_factor": float(round(inv.month_factor, 6)),
        "prices_as_of": str(inv.prices.as_of),
        "batch_read_after_seconds": inv.batch_read_after_seconds,
        "features": [feature_record(f) for f in inv.features],
        "totals": {
            "today_monthly_usd": _usd(totals.today_monthly),
            "batch_alone_monthly_usd": _usd(totals.batch_alone_monthly),
            "after_migration_monthly_usd": _usd(totals.after_migration_monthly),
            "saving_pct": None if totals.saving_share is None else float(round(totals.saving_share * 100, 2)),
            "routed_monthly_usd": _usd(totals.routed_monthly),
            "all_levers_monthly_usd": _usd(totals.all_levers_monthly),
            "all_levers_saving_pct": _pct(totals.all_levers_saving_share),
            "unpriced_features": totals.unpriced_features,
        },
        "routing_rule": {"target": ROUTE_TO, "source": SOURCE_URL, "read_on": SOURCE_READ_ON,
                         "rule": rule_line()},
    }
    return json.dumps(document, indent=2) + "\n"


def to_csv(inv: Inventory) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for f in inv.features:
        row = feature_record(f)
        row["models"] = ";".join(f"{model}={n}" for model, n in row["models"].items())
        row["caching_notes"] = " | ".join(row["caching_notes"])
        writer.writerow({key: "" if value is None else value for key, value in row.items()})
    return out.getvalue()
