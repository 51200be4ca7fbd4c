"""``nightshift inventory FILE [--format table|csv|json] [--output PATH] [--chart PATH.html] [--days-in-month 30]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from nightshift.inventory.classify import BATCH_READ_AFTER_SECONDS
from nightshift.inventory.inventory import build_inventory
from nightshift.inventory.records import InventoryInputError, read_traffic
from nightshift.inventory.savings import DEFAULT_DAYS_IN_MONTH

TABLE_WIDTH = 140  # when not on a terminal (a pipe, --output), which would otherwise be 80 columns
EXIT_OK = 0
EXIT_UNREADABLE = 2  # the file as a whole cannot be used: argparse's code for a usage error too


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above zero, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nightshift inventory",
        description="Inventory API traffic for a move to the Message Batches API: per feature, is a person "
                    "waiting on it (live), nobody (batch candidate), or is it unclear (gray zone), and what would "
                    "batching (and caching a shared prefix) save a month. Input format: docs/inventory.md.")
    parser.add_argument("file", metavar="FILE", type=Path, help="traffic file: .csv with a header, or .jsonl")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table",
                        help="table (default) for a person; csv or json, one row per feature, for a program")
    parser.add_argument("--output", metavar="PATH", type=Path, help="write the report here instead of stdout")
    parser.add_argument("--chart", metavar="PATH.html", type=Path,
                        help="also write a self-contained HTML page with an SVG bar chart of monthly spend")
    parser.add_argument("--days-in-month", metavar="N", type=_positive, default=DEFAULT_DAYS_IN_MONTH,
                        help="days the file's span is scaled to for monthly figures (default %(default)s)")
    parser.add_argument("--batch-read-after-hours", metavar="H", type=_positive, default=BATCH_READ_AFTER_SECONDS / 3600,
                        help="a batch candidate's results must mostly be first read this long after the request, "
                             "where first-read times are known (default %(default)g)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        parsed = read_traffic(args.file)
    except (InventoryInputError, OSError, UnicodeDecodeError) as exc:
        _say(f"nightshift inventory: {exc}")
        return EXIT_UNREADABLE
    if not parsed.records:
        _say(f"nightshift inventory: {args.file}: no valid rows among {parsed.rows_read:,}")
        for error in parsed.errors[:10]:
            _say(f"  {error}")
        return EXIT_UNREADABLE

    inv = build_inventory(parsed, days_in_month=args.days_in_month,
                          batch_read_after_seconds=args.batch_read_after_hours * 3600)

    if args.format == "table":
        if args.output:
            with args.output.open("w", encoding="utf-8") as handle:
                _print_table(inv, Console(file=handle, width=TABLE_WIDTH, no_color=True, highlight=False))
        else:
            _print_table(inv, Console(highlight=False, width=None if sys.stdout.isatty() else TABLE_WIDTH))
    else:
        from nightshift.inventory.render import to_csv, to_json

        text = to_json(inv) if args.format == "json" else to_csv(inv)
        if args.output:
            args.output.write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
        if parsed.errors:
            _say(f"nightshift inventory: {len(parsed.errors):,} malformed row(s) skipped, the first: "
                 f"{parsed.errors[0]} (--format json lists them all)")

    if args.chart:
        from nightshift.inventory.chart import render_chart

        args.chart.write_text(render_chart(inv), encoding="utf-8")
        _say(f"chart written to {args.chart}")
    if args.output:
        _say(f"{args.format} written to {args.output}")
    return EXIT_OK


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _print_table(inv, console: Console) -> None:
    from nightshift.inventory.render import print_table

    print_table(inv, console)
