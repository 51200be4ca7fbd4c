"""The ``nightshift`` subcommands of this repository's own tooling: the demo, the emulator, the
local Postgres and Airflow, and the benchmarks. ``nightshift.cli`` adds them when this
distribution (``nightshift-devtools``) is installed beside the runtime package."""

from __future__ import annotations

import argparse
import sys

from nightshift.cli import _dsn


def cmd_emulator(args: argparse.Namespace, rest: list[str]) -> int:
    from emulator.__main__ import main as emulator_main

    return emulator_main(rest)


def cmd_db_init(args: argparse.Namespace, rest: list[str]) -> int:
    from nightshift import db
    from nightshift_dev.localdev.schema import apply_schema

    with db.connect(_dsn(args)) as conn:
        if args.reset:
            conn.execute("DROP SCHEMA IF EXISTS app CASCADE")
            conn.execute("DROP SCHEMA IF EXISTS nightshift CASCADE")
        applied = apply_schema(conn)
    print(f"applied {', '.join(applied)}")
    return 0


def cmd_demo_data(args: argparse.Namespace, rest: list[str]) -> int:
    from nightshift import db
    from nightshift_dev import demo_data

    with db.connect(_dsn(args)) as conn:
        counts = demo_data.generate(conn, tickets=args.tickets, products=args.products, seed=args.seed)
    print(f"generated {counts.tickets} tickets, {counts.products} products "
          f"({counts.bad_rows} deliberately bad), queued {counts.requests} requests")
    return 0


def cmd_dev(args: argparse.Namespace, rest: list[str]) -> int:
    from nightshift_dev.localdev import environment

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
    from nightshift_dev.localdev import demo

    return demo.run(tickets=args.tickets, products=args.products)


def cmd_cost_bench(args: argparse.Namespace, rest: list[str]) -> int:
    from nightshift_dev.bench import cost

    cost.print_result(cost.run(requests=args.requests))
    return 0


def cmd_bench(args: argparse.Namespace, rest: list[str]) -> int:
    from pathlib import Path

    from nightshift_dev.bench import pipeline

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


def cmd_stack(args: argparse.Namespace, rest: list[str]) -> int:
    from nightshift_dev.localdev import stack

    return stack.up() if args.command == "up" else stack.down()


def register(sub) -> None:
    from nightshift_dev.bench.harness import GROUPS

    sub.add_parser("emulator", help="run the local Anthropic API emulator (flags: nightshift emulator --help)",
                   add_help=False).set_defaults(func=cmd_emulator)

    p = sub.add_parser("db-init", help="create the demo app tables and upgrade the ledger (idempotent)")
    p.add_argument("--dsn")
    p.add_argument("--reset", action="store_true", help="drop the app and nightshift schemas first")
    p.set_defaults(func=cmd_db_init)

    p = sub.add_parser("demo-data", help="generate a night of demo requests")
    p.add_argument("--dsn")
    p.add_argument("--tickets", type=int, default=2000)
    p.add_argument("--products", type=int, default=1000)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_demo_data)

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

    sub.add_parser("up", help="start a local Airflow (api-server, scheduler, dag-processor, triggerer)").set_defaults(func=cmd_stack)
    sub.add_parser("down", help="stop everything `nightshift up`/`demo` started").set_defaults(func=cmd_stack)


PASSTHROUGH = {"emulator": cmd_emulator}
