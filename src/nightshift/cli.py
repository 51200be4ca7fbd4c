"""The ``nightshift`` command: the project's own tools, one subcommand each.

The runtime commands (``db``, ``workloads``, ``enqueue``, ``requeue``, ``report``, ``parity``, ``switch``,
``trial``, ``estimate``, ``inventory``) ship with the package; the demo, emulator, local-dev and bench
commands join them when this repository's ``nightshift-devtools`` distribution is installed. The Makefile
is a thin layer over these; every subcommand also works on its own.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator


def _dsn(args: argparse.Namespace) -> str:
    """``--dsn``; else ``[nightshift] db_conn_id`` when it is a URL or its connection is in the environment;
    else, in this repository's work tree, the demo's database; else the connection through Airflow."""
    from nightshift import db
    from nightshift.config import settings

    if args.dsn:
        return args.dsn
    conn_id = settings().db_conn_id
    if "://" in conn_id or f"AIRFLOW_CONN_{conn_id.upper()}" in os.environ:
        return db.dsn(conn_id)
    try:
        from nightshift_dev.localdev.environment import profile
    except ImportError:
        return db.dsn(conn_id)
    return profile("demo").cluster.dsn()


def cmd_inventory(args: argparse.Namespace, rest: list[str]) -> int:
    from nightshift.inventory.cli import main as inventory_main

    return inventory_main(rest)


def cmd_report(args: argparse.Namespace, rest: list[str]) -> int:
    from nightshift import db, report

    with db.connect(_dsn(args)) as conn:
        report.print_report(conn)
    return 0


def cmd_parity(args: argparse.Namespace, rest: list[str]) -> int:
    from nightshift import db
    from nightshift.migration import parity
    from nightshift.migration.render import print_parity
    from nightshift.deployment import get_workload

    with db.connect(_dsn(args)) as conn:
        try:
            report = parity.compare(conn, get_workload(args.workload))
        except parity.NoShadowRun as exc:
            print(exc, file=sys.stderr)
            return 1
        parity.record(conn, report)
    if args.json:
        import json

        print(json.dumps(report.as_dict(), default=str, indent=2))
    else:
        print_parity(report)
    return 0


def cmd_switch(args: argparse.Namespace, rest: list[str]) -> int:
    from nightshift import db
    from nightshift.migration.switch import SwitchRefused, switch, switch_model
    from nightshift.deployment import get_workload

    if args.model and args.min_keys is not None:
        print("nightshift switch: --min-keys is for --to batch; a --model switch rests on a trial's interval",
              file=sys.stderr)
        return 2
    with db.connect(_dsn(args)) as conn:
        try:
            if args.model:
                print(switch_model(conn, get_workload(args.workload), args.model,
                                   min_agreement=args.min_agreement))
            else:
                print(switch(conn, get_workload(args.workload), args.to, min_agreement=args.min_agreement,
                             min_keys=args.min_keys))
        except SwitchRefused as exc:
            print(exc, file=sys.stderr)
            return 1
    return 0


def cmd_trial(args: argparse.Namespace, rest: list[str]) -> int:
    """Run a model trial and print its report, or (``--report``) reprint a stored one."""
    import json
    from datetime import date

    from nightshift import db
    from nightshift.deployment import get_workload
    from nightshift.ledger import trials
    from nightshift.ledger.schema import SchemaOutOfDate, require_current
    from nightshift.migration.trial import TrialError, TrialRequest
    from nightshift.migration.trial_render import print_trial
    from nightshift.workloads.registry import WorkloadDefinitionError

    def fail(message: str) -> int:
        print(f"nightshift trial: {message}", file=sys.stderr)
        return 1

    try:
        workload = get_workload(args.workload)
    except WorkloadDefinitionError as exc:
        return fail(f"--workload {args.workload}: {exc}")
    if args.poll_interval is not None:
        if args.poll_interval <= 0:
            return fail(f"--poll-interval {args.poll_interval:g}: must be more than 0 seconds")
        workload = workload.model_copy(update={"batch": workload.batch.model_copy(
            update={"poll_interval_seconds": args.poll_interval})})
    with db.connect(_dsn(args)) as conn:
        try:
            require_current(conn)
        except SchemaOutOfDate as exc:
            return fail(str(exc))
        if args.report:
            stored = (trials.get(conn, args.trial) if args.trial
                      else trials.latest_reported(conn, workload.name))
            if stored is None or stored.workload != workload.name or stored.report is None:
                return fail(f"no reported trial {f'#{args.trial} ' if args.trial else ''}of {workload.name}")
            report = stored.report
        else:
            if not args.candidate:
                return fail("--candidate MODEL is required to run a trial (or --report to reprint one)")
            days = {}
            for flag, text in (("--from", args.start), ("--to", args.end)):
                try:
                    days[flag] = None if text is None else date.fromisoformat(text)
                except ValueError:
                    return fail(f"{flag} {text!r}: not a date (YYYY-MM-DD)")
            request = TrialRequest(args.candidate, args.sample, days["--from"], days["--to"], args.seed)
            try:
                report = _run_trial(conn, workload, request)
            except TrialError as exc:
                return fail(str(exc))
    if args.json:
        print(json.dumps(report, default=str, indent=2))
    else:
        print_trial(report)
    return 0


def _run_trial(conn, workload, request) -> dict:
    from nightshift.config import settings
    from nightshift.hooks import batch_backend
    from nightshift.migration.trial_run import run_trial

    cfg = settings()
    backend = batch_backend(workload.backend, cfg.anthropic_conn_id, console_batch_url=cfg.console_batch_url)
    with _logs_to_stderr():
        return run_trial(conn, backend, workload, request, max_queued=cfg.max_queued_requests)


@contextlib.contextmanager
def _logs_to_stderr() -> Iterator[None]:
    """The run's progress logs go to stderr, so stdout carries the report alone (``nightshift trial ... >
    report.txt``, ``--json | jq``): Airflow sets its logging up on first use, with a handler on stdout."""
    import logging

    moved = [(handler, handler.stream) for handler in logging.root.handlers
             if type(handler) is logging.StreamHandler and handler.stream is not sys.stderr]
    for handler, _ in moved:
        handler.stream = sys.stderr  # not setStream: it flushes the old stream, which may be closed
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for handler, stream in moved:
            handler.stream = stream


def cmd_estimate(args: argparse.Namespace, rest: list[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    from nightshift import db
    from nightshift.backfill_intervals import backfill_intervals, parse_date
    from nightshift.batch.estimate import estimate
    from nightshift.costs import price_table
    from nightshift.deployment import get_workload
    from nightshift.routing import model_in_force

    workload = get_workload(args.workload)
    dates = {}
    for flag, text in (("--from", args.start), ("--to", args.end)):
        try:
            dates[flag] = parse_date(text)
        except ValueError as exc:
            print(f"nightshift estimate: {flag} {text!r}: {exc} (a date or timestamp, e.g. 2026-03-01 or "
                  "2026-03-01T02:00:00+00:00)", file=sys.stderr)
            return 2
    start, end = dates["--from"], dates["--to"]
    with db.connect(_dsn(args)) as conn:
        workload = model_in_force(conn, workload)  # what the backfill will run on, and its prompt version
        intervals = estimate(conn, workload, price_table(), backfill_intervals(workload, start, end),
                             reprocess=args.reprocess)
    if args.json:
        import json

        print(json.dumps([{"start": i.start.isoformat(), "end": i.end.isoformat(), "rows": i.rows,
                           "invalid_rows": i.invalid_rows, "batch_usd": str(i.batch_usd),
                           "streaming_usd": str(i.streaming_usd)} for i in intervals], indent=2))
        return 0
    table = Table(title=f"Dry run: {workload.name} backfill {args.start} to {args.end} (nothing submitted): "
                        f"the runs of `airflow backfill create --from-date {args.start} --to-date {args.end}`",
                  title_justify="left")
    for column in ("interval", "rows", "input tokens", "output tokens", "batch", "streaming"):
        table.add_column(column, justify="left" if column == "interval" else "right")
    for i in intervals:
        table.add_row(f"{i.start:%Y-%m-%d %H:%M} – {i.end:%Y-%m-%d %H:%M}", f"{i.rows:,}",
                      f"{i.item_tokens + i.rows * i.prefix_tokens:,}",
                      f"{i.output_tokens:,}", f"${i.batch_usd:.4f}", f"${i.streaming_usd:.4f}")
    table.add_row("total", f"{sum(i.rows for i in intervals):,}", "", "",
                  f"${sum(i.batch_usd for i in intervals):.4f}", f"${sum(i.streaming_usd for i in intervals):.4f}")
    Console(width=120).print(table)
    return 0


def cmd_enqueue(args: argparse.Namespace, rest: list[str]) -> int:
    from datetime import datetime

    from nightshift import db
    from nightshift.deployment import get_workload
    from nightshift.enqueue import (EnqueueError, Filter, enqueue_keys, enqueue_where, read_keys,
                                    window_filters)

    def moment(flag: str, text: str | None) -> datetime | None:
        try:
            return None if text is None else datetime.fromisoformat(text)
        except ValueError:
            raise EnqueueError(f"{flag} {text!r}: not an ISO date or timestamp "
                               "(2026-05-01, 2026-05-01T06:00+00:00)") from None

    workload = get_workload(args.workload)
    try:
        filtered = bool(args.where or args.since or args.until)
        if filtered == bool(args.keys_file):
            raise EnqueueError("give either keys (--keys-file FILE, or - for stdin) or filters "
                               "(--where, --since, --until), not both and not neither")
        with db.connect(_dsn(args)) as conn:
            if args.keys_file:
                if args.keys_file == "-":
                    keys = read_keys(sys.stdin, "stdin")
                else:
                    try:
                        with open(args.keys_file, encoding="utf-8") as f:
                            keys = read_keys(f, args.keys_file)
                    except OSError as exc:
                        raise EnqueueError(f"--keys-file {args.keys_file}: {exc.strerror}") from None
                done = enqueue_keys(conn, workload, keys)
            else:
                filters = [Filter.parse(text, workload) for text in args.where]
                filters += window_filters(workload, moment("--since", args.since),
                                          moment("--until", args.until))
                done = enqueue_where(conn, workload, filters)
    except EnqueueError as exc:
        print(f"nightshift enqueue: {exc}", file=sys.stderr)
        return 2
    print(f"{workload.name}: {done.queued} queued, {done.already_pending} already pending "
          f"(of {done.given} {'keys' if args.keys_file else 'matching source rows'})")
    return 0


def cmd_requeue(args: argparse.Namespace, rest: list[str]) -> int:
    from nightshift import db
    from nightshift.deployment import get_workload
    from nightshift.enqueue import EnqueueError, requeue

    workload = get_workload(args.workload)
    statuses = [s.strip() for text in args.status for s in text.split(",") if s.strip()]
    try:
        with db.connect(_dsn(args)) as conn:
            done = requeue(conn, workload, statuses, args.run)
    except EnqueueError as exc:
        print(f"nightshift requeue: {exc}", file=sys.stderr)
        return 2
    print(f"{workload.name}: {done.failed} key(s) failed {'/'.join(statuses)}"
          f"{f' in run {args.run}' if args.run else ''}: {done.queued} queued again, {done.already_pending} "
          f"already pending, {done.superseded} left alone (answered, failed otherwise or taken by a night "
          "since)")
    return 0


def cmd_db(args: argparse.Namespace, rest: list[str]) -> int:
    from nightshift import db
    from nightshift.ledger import schema

    with db.connect(_dsn(args)) as conn:
        if args.action == "upgrade":
            applied = schema.upgrade(conn)
            print(f"ledger schema at version {schema.head()}"
                  + (f": applied {', '.join(f'{m.version:03d}_{m.name}' for m in applied)}" if applied else " (up to date)"))
            return 0
        missing = schema.pending(conn)
        print(f"ledger schema: {len(missing)} migration(s) pending" + (
            f" ({', '.join(f'{m.version:03d}_{m.name}' for m in missing)}): run `nightshift db upgrade`" if missing
            else f", at version {schema.head()}"))
        return 1 if missing else 0


def cmd_workloads(args: argparse.Namespace, rest: list[str]) -> int:
    from pathlib import Path

    from nightshift.workloads import reference

    target = Path(args.output) if args.output else None
    if target is None:
        from nightshift.paths import project_root

        try:
            target = project_root() / "docs" / "workloads.md"
        except FileNotFoundError as exc:
            print(f"{exc}; name the file to write with --output", file=sys.stderr)
            return 2
    if args.check:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != reference.render():
            print(f"{target} is stale: run `{reference.REGENERATE}`", file=sys.stderr)
            return 1
        print(f"{target} is up to date")
        return 0
    print(f"{target}: {'written' if reference.write(target) else 'already up to date'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nightshift", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("inventory", help="sort past API traffic into batch candidates and project the saving "
                   "(flags: nightshift inventory --help)", add_help=False).set_defaults(func=cmd_inventory)

    p = sub.add_parser("db", help="the ledger schema in the application database: upgrade (create or migrate, "
                       "idempotent, safe from two processes at once) or check")
    p.add_argument("action", choices=["upgrade", "check"])
    p.add_argument("--dsn", help="a postgresql:// URL (default: the [nightshift] db_conn_id connection)")
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("workloads", help="the workload file field reference: write docs/workloads.md from the "
                       "definition model, or check that it is current")
    p.add_argument("action", choices=["reference"])
    p.add_argument("--output", help="where to write it (default: docs/workloads.md of this work tree)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when the file is stale")
    p.set_defaults(func=cmd_workloads)

    p = sub.add_parser("report", help="what happened: requests, outcomes, where the rows are")
    p.add_argument("--dsn")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("parity", help="compare a workload's shadow (batch) rows with its streaming rows")
    p.add_argument("--workload", required=True)
    p.add_argument("--dsn")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_parity)

    p = sub.add_parser("switch", help="move a workload to shadow mode, or to batch when parity allows, or to "
                       "another model when its latest trial clears migration.min_agreement")
    p.add_argument("--workload", required=True)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", choices=["shadow", "batch"])
    target.add_argument("--model", help="run the workload on this model (its file's model switches back)")
    p.add_argument("--min-agreement", type=float, help="override the workload's migration.min_agreement")
    p.add_argument("--min-keys", type=int, help="override the workload's migration.min_keys")
    p.add_argument("--dsn")
    p.set_defaults(func=cmd_switch)

    p = sub.add_parser("trial", help="a model trial: a sample of rows the current model wrote, answered on "
                       "a candidate model through the batch path into a trial table; prints agreement (with "
                       "its 95%% interval), confusion tables and the cost on each model")
    p.add_argument("--workload", required=True)
    p.add_argument("--candidate", metavar="MODEL", help="the model to try")
    p.add_argument("--sample", type=int, default=2_000,
                   help="keys to sample (default 2,000: a 95%% interval of at most about ±2.2 points)")
    p.add_argument("--from", dest="start", metavar="YYYY-MM-DD",
                   help="only source rows whose source.timestamp_column is on or after this day (UTC)")
    p.add_argument("--to", dest="end", metavar="YYYY-MM-DD",
                   help="only source rows whose source.timestamp_column is on or before this day (UTC)")
    p.add_argument("--seed", type=int, help="the sample's seed (default: drawn, and recorded in the report)")
    p.add_argument("--poll-interval", type=float, metavar="SECONDS",
                   help="seconds between polls of the trial's batches (default: the workload's "
                        "batch.poll_interval_seconds)")
    p.add_argument("--report", action="store_true", help="reprint the latest reported trial (or --trial N)")
    p.add_argument("--trial", type=int, metavar="N", help="with --report: this trial")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--dsn")
    p.set_defaults(func=cmd_trial)

    p = sub.add_parser("enqueue", help="queue work for a workload's next night: keys from a file or stdin, or "
                       "the source rows a filter matches; a key already pending is not queued again")
    p.add_argument("--workload", required=True)
    p.add_argument("--keys-file", metavar="FILE", help="one source key per line; - reads stdin")
    p.add_argument("--where", action="append", default=[], metavar="COLUMN=VALUE",
                   help="a filter on a source column the workload declares (=, !=, >=, <=, >, <; repeatable, "
                   "all must match); the value is bound as a parameter of the column's type")
    p.add_argument("--since", help="source timestamp column >= this (ISO date or timestamp)")
    p.add_argument("--until", help="source timestamp column < this")
    p.add_argument("--dsn")
    p.set_defaults(func=cmd_enqueue)

    p = sub.add_parser("requeue", help="queue again the keys whose latest request failed with a given type "
                       "(not_submitted, expired_after_retries, ...), unless answered or queued since")
    p.add_argument("--workload", required=True)
    p.add_argument("--status", action="append", required=True, metavar="ERROR_TYPE",
                   help="an item's failure type (repeatable or comma-separated)")
    p.add_argument("--run", type=int, metavar="RUN_PK", help="only this run's failures")
    p.add_argument("--dsn")
    p.set_defaults(func=cmd_requeue)

    p = sub.add_parser("estimate", help="dry-run a backfill: rows, tokens and cost per interval, without submitting")
    p.add_argument("--workload", required=True)
    p.add_argument("--from", dest="start", required=True,
                   help="as `airflow backfill create --from-date`: the first interval's start (logical date), "
                        "YYYY-MM-DD[THH:MM+00:00], inclusive")
    p.add_argument("--to", dest="end", required=True,
                   help="as `airflow backfill create --to-date`: the last interval's start (logical date), inclusive")
    p.add_argument("--reprocess", action="store_true", help="count rows already at the current prompt version too")
    p.add_argument("--json", action="store_true", help="the intervals as JSON (start, end, rows, prices)")
    p.add_argument("--dsn")
    p.set_defaults(func=cmd_estimate)

    try:
        from nightshift_dev.cli import register
    except ImportError:  # the runtime package alone: no demo, emulator or bench commands
        pass
    else:
        register(sub)
    return parser

def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    passthrough = {"inventory": cmd_inventory, **_dev_passthrough()}
    if argv[:1] and argv[0] in passthrough:
        return passthrough[argv[0]](argparse.Namespace(), argv[1:])
    args = parser.parse_args(argv)
    return args.func(args, [])


def _dev_passthrough() -> dict:
    try:
        from nightshift_dev.cli import PASSTHROUGH
    except ImportError:
        return {}
    return PASSTHROUGH


if __name__ == "__main__":
    sys.exit(main())
