"""The ``nightshift`` command: the project's own tools, one subcommand each.

The Makefile is a thin layer over these; every subcommand also works on its own.
"""

from __future__ import annotations

import argparse
import os
import sys


def _dsn(args: argparse.Namespace) -> str:
    dsn = args.dsn or os.environ.get("NIGHTSHIFT_DB_URL")
    if not dsn:
        from nightshift.localdev.environment import profile

        dsn = profile("demo").cluster.dsn()
    return dsn


def cmd_emulator(args: argparse.Namespace, rest: list[str]) -> int:
    from emulator.__main__ import main as emulator_main

    return emulator_main(rest)


def cmd_inventory(args: argparse.Namespace, rest: list[str]) -> int:
    from nightshift.inventory.cli import main as inventory_main

    return inventory_main(rest)


def cmd_db_init(args: argparse.Namespace, rest: list[str]) -> int:
    from nightshift import db

    with db.connect(_dsn(args)) as conn:
        if args.reset:
            conn.execute("DROP SCHEMA IF EXISTS app CASCADE")
            conn.execute("DROP SCHEMA IF EXISTS nightshift CASCADE")
        applied = db.apply_schema(conn)
    print(f"applied {', '.join(applied)}")
    return 0


def cmd_demo_data(args: argparse.Namespace, rest: list[str]) -> int:
    from nightshift import db, demo_data

    with db.connect(_dsn(args)) as conn:
        counts = demo_data.generate(conn, tickets=args.tickets, products=args.products, seed=args.seed)
    print(f"generated {counts.tickets} tickets, {counts.products} products "
          f"({counts.bad_rows} deliberately bad), queued {counts.requests} requests")
    return 0


def cmd_report(args: argparse.Namespace, rest: list[str]) -> int:
    from nightshift import db, report

    with db.connect(_dsn(args)) as conn:
        report.print_report(conn)
    return 0


def cmd_dev(args: argparse.Namespace, rest: list[str]) -> int:
    from nightshift.localdev import environment

    prof = environment.profile(args.profile)
    if args.action == "pg-start":
        started = prof.cluster.ensure_started()
        print(f"postgres {'started' if started else 'already running'} on 127.0.0.1:{prof.pg_port} ({prof.cluster.root})")
    elif args.action == "pg-stop":
        prof.cluster.stop()
        print("postgres stopped")
    elif args.action == "pg-status":
        print("running" if prof.cluster.is_running() else "stopped")
        return 0 if prof.cluster.is_running() else 3
    elif args.action == "env":
        import shlex

        for key, value in prof.environment().items():
            print(f"export {key}={shlex.quote(value)}")
    return 0


def cmd_demo(args: argparse.Namespace, rest: list[str]) -> int:
    from nightshift.localdev import demo

    return demo.run(tickets=args.tickets, products=args.products)


def cmd_cost_bench(args: argparse.Namespace, rest: list[str]) -> int:
    from nightshift.bench import cost

    cost.print_result(cost.run(requests=args.requests))
    return 0


def cmd_bench(args: argparse.Namespace, rest: list[str]) -> int:
    from pathlib import Path

    from nightshift.bench import pipeline

    sizes = pipeline.Sizes(requests=args.requests, small=args.small, collect_rows=args.collect_rows,
                           waits=args.waits, row_by_row_sample=args.row_by_row_sample)
    groups = tuple(args.only.split(",")) if args.only else pipeline.GROUPS
    unknown = set(groups) - set(pipeline.GROUPS)
    if unknown:
        print(f"unknown group(s) {sorted(unknown)}; known: {', '.join(pipeline.GROUPS)}", file=sys.stderr)
        return 2
    report = pipeline.run(sizes, groups=groups, out=Path(args.out))
    report.print()
    print(f"results in {args.out}")
    return report.exit_code()


def cmd_parity(args: argparse.Namespace, rest: list[str]) -> int:
    from nightshift import db
    from nightshift.migration import parity
    from nightshift.migration.render import print_parity
    from nightshift.workloads import get_workload

    with db.connect(_dsn(args)) as conn:
        report = parity.compare(conn, get_workload(args.workload))
        parity.record(conn, report)
    if args.json:
        import json

        print(json.dumps(report.as_dict(), default=str, indent=2))
    else:
        print_parity(report)
    return 0


def cmd_switch(args: argparse.Namespace, rest: list[str]) -> int:
    from nightshift import db
    from nightshift.migration.switch import SwitchRefused, switch
    from nightshift.workloads import get_workload

    with db.connect(_dsn(args)) as conn:
        try:
            print(switch(conn, get_workload(args.workload), args.to, min_agreement=args.min_agreement))
        except SwitchRefused as exc:
            print(exc, file=sys.stderr)
            return 1
    return 0


def cmd_estimate(args: argparse.Namespace, rest: list[str]) -> int:
    from datetime import datetime, timezone

    from rich.console import Console
    from rich.table import Table

    from nightshift import db
    from nightshift.batch.estimate import estimate
    from nightshift.costs import price_table
    from nightshift.workloads import get_workload

    def day(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)

    workload = get_workload(args.workload)
    with db.connect(_dsn(args)) as conn:
        intervals = estimate(conn, workload, price_table(), day(args.start), day(args.end), reprocess=args.reprocess)
    table = Table(title=f"Dry run: {workload.name} backfill {args.start} to {args.end} (nothing submitted)",
                  title_justify="left")
    for column in ("interval", "rows", "input tokens", "output tokens", "batch", "streaming"):
        table.add_column(column, justify="left" if column == "interval" else "right")
    for i in intervals:
        table.add_row(i.start.date().isoformat(), f"{i.rows:,}", f"{i.item_tokens + i.rows * i.prefix_tokens:,}",
                      f"{i.output_tokens:,}", f"${i.batch_usd:.4f}", f"${i.streaming_usd:.4f}")
    table.add_row("total", f"{sum(i.rows for i in intervals):,}", "", "",
                  f"${sum(i.batch_usd for i in intervals):.4f}", f"${sum(i.streaming_usd for i in intervals):.4f}")
    Console(width=120).print(table)
    return 0


def cmd_stack(args: argparse.Namespace, rest: list[str]) -> int:
    from nightshift.localdev import stack

    return stack.up() if args.command == "up" else stack.down()


def build_parser() -> argparse.ArgumentParser:
    from nightshift.bench.harness import GROUPS

    parser = argparse.ArgumentParser(prog="nightshift", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("inventory", help="sort past API traffic into batch candidates and project the saving "
                   "(flags: nightshift inventory --help)", add_help=False).set_defaults(func=cmd_inventory)
    sub.add_parser("emulator", help="run the local Anthropic API emulator (flags: nightshift emulator --help)",
                   add_help=False).set_defaults(func=cmd_emulator)

    p = sub.add_parser("db-init", help="create the application schema (idempotent)")
    p.add_argument("--dsn")
    p.add_argument("--reset", action="store_true", help="drop the app and nightshift schemas first")
    p.set_defaults(func=cmd_db_init)

    p = sub.add_parser("demo-data", help="generate a night of demo requests")
    p.add_argument("--dsn")
    p.add_argument("--tickets", type=int, default=2000)
    p.add_argument("--products", type=int, default=1000)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_demo_data)

    p = sub.add_parser("report", help="what happened: requests, outcomes, where the rows are")
    p.add_argument("--dsn")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("dev", help="local environment: pg-start, pg-stop, pg-status, env")
    p.add_argument("action", choices=["pg-start", "pg-stop", "pg-status", "env"])
    p.add_argument("--profile", choices=["demo", "test"], default="demo")
    p.set_defaults(func=cmd_dev)

    p = sub.add_parser("demo", help="set up everything locally and run one night end to end")
    p.add_argument("--tickets", type=int, default=2000)
    p.add_argument("--products", type=int, default=1000)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("cost-bench", help="price a reference classification night against streaming and the floor")
    p.add_argument("--requests", type=int, default=1000)
    p.set_defaults(func=cmd_cost_bench)

    p = sub.add_parser("bench", help="measure the pipeline against its physical limits; exits 1 when a target "
                       "is missed")
    p.add_argument("--requests", type=int, default=100_000, help="the big night (land, submit, memory, Airflow)")
    p.add_argument("--small", type=int, default=10_000, help="the small night memory growth is measured against")
    p.add_argument("--collect-rows", type=int, default=1_000_000, help="pending rows for the collect measurement")
    p.add_argument("--waits", type=int, default=1_000, help="concurrent batch waits in one triggerer")
    p.add_argument("--row-by-row-sample", type=int, default=10_000,
                   help="results timed for the row-by-row baseline, scaled to the whole night (0: all)")
    p.add_argument("--only", help=f"comma-separated groups to run (default all: {', '.join(GROUPS)})")
    p.add_argument("--out", default="artifacts/bench.json")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("parity", help="compare a workload's shadow (batch) rows with its streaming rows")
    p.add_argument("--workload", required=True)
    p.add_argument("--dsn")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_parity)

    p = sub.add_parser("switch", help="move a workload to shadow mode, or to batch when parity allows")
    p.add_argument("--workload", required=True)
    p.add_argument("--to", required=True, choices=["shadow", "batch"])
    p.add_argument("--min-agreement", type=float, help="override the workload's migration.min_agreement")
    p.add_argument("--dsn")
    p.set_defaults(func=cmd_switch)

    p = sub.add_parser("estimate", help="dry-run a backfill: rows, tokens and cost per day, without submitting")
    p.add_argument("--workload", required=True)
    p.add_argument("--from", dest="start", required=True, help="first day, YYYY-MM-DD (UTC)")
    p.add_argument("--to", dest="end", required=True, help="day after the last, YYYY-MM-DD (UTC)")
    p.add_argument("--reprocess", action="store_true", help="count rows already at the current prompt version too")
    p.add_argument("--dsn")
    p.set_defaults(func=cmd_estimate)

    sub.add_parser("up", help="start a local Airflow (api-server, scheduler, dag-processor, triggerer)").set_defaults(func=cmd_stack)
    sub.add_parser("down", help="stop everything `nightshift up`/`demo` started").set_defaults(func=cmd_stack)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    passthrough = {"emulator": cmd_emulator, "inventory": cmd_inventory}
    if argv[:1] and argv[0] in passthrough:
        return passthrough[argv[0]](argparse.Namespace(), argv[1:])
    args = parser.parse_args(argv)
    return args.func(args, [])


if __name__ == "__main__":
    sys.exit(main())
